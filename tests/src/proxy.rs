//! A TCP fault proxy owned by the harness: it sits between a component under test and a shared
//! server, and can cut every connection and refuse new ones, then heal. Outages are simulated
//! here, never by stopping the shared servers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct FaultProxy {
    address: SocketAddr,
    state: Arc<State>,
    accept_loop: tokio::task::JoinHandle<()>,
}

struct State {
    upstream: String,
    /// While true, new connections are closed at once and existing ones have been cut.
    down: AtomicBool,
    /// Bumped by every cut: each proxied connection ends when it changes.
    cuts: watch::Sender<u64>,
    refused: AtomicU64,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the proxy");
        let address = listener.local_addr().expect("proxy address");
        let state = Arc::new(State {
            upstream: upstream.to_owned(),
            down: AtomicBool::new(false),
            cuts: watch::channel(0).0,
            refused: AtomicU64::new(0),
        });
        let accept_loop = tokio::spawn(accept(listener, state.clone()));
        Self {
            address,
            state,
            accept_loop,
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Cuts every open connection and refuses new ones until [`FaultProxy::heal`].
    pub fn cut(&self) {
        self.state.down.store(true, Ordering::SeqCst);
        self.state.cuts.send_modify(|cuts| *cuts += 1);
    }

    pub fn heal(&self) {
        self.state.down.store(false, Ordering::SeqCst);
    }

    /// Connections refused since the proxy started: a component tried to reconnect.
    pub fn refused(&self) -> u64 {
        self.state.refused.load(Ordering::SeqCst)
    }

    /// Waits until a component has tried (and failed) to connect while the proxy is cut.
    pub async fn wait_for_refusal(&self, after: u64) {
        tokio::time::timeout(crate::EVENT_TIMEOUT, async {
            let mut interval = tokio::time::interval(std::time::Duration::from_millis(20));
            while self.refused() <= after {
                interval.tick().await;
            }
        })
        .await
        .expect("no component tried to reconnect through the cut proxy");
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept_loop.abort();
        self.cut();
    }
}

async fn accept(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if state.down.load(Ordering::SeqCst) {
            state.refused.fetch_add(1, Ordering::SeqCst);
            drop(client);
            continue;
        }
        let state = state.clone();
        tokio::spawn(async move {
            let mut cuts = state.cuts.subscribe();
            let Ok(mut upstream) = TcpStream::connect(&state.upstream).await else {
                return;
            };
            let mut client = client;
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            tokio::select! {
                _ = copy_bidirectional(&mut client, &mut upstream) => {}
                _ = cuts.changed() => {}
            }
            // Dropping both streams closes them: the component sees its connection die.
        });
    }
}
