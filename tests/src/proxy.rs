//! A TCP fault proxy owned by the harness: it sits between a component under test and a shared
//! server, and can cut every connection and refuse new ones, or stall them (bytes are taken and
//! held, nothing is forwarded: a half-open link), then heal. Outages are simulated here, never by
//! stopping the shared servers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
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
    /// Connections refused while down: each is a component trying to reconnect.
    refused: watch::Sender<u64>,
    /// While true, connections stay open but nothing read is forwarded, either way.
    stalled: watch::Sender<bool>,
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
            refused: watch::channel(0).0,
            stalled: watch::channel(false).0,
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
        self.handle().cut();
    }

    pub fn heal(&self) {
        self.handle().heal();
    }

    /// Keeps every connection open but forwards nothing, either way, until
    /// [`FaultProxy::unstall`]: a peer that went silent without closing.
    pub fn stall(&self) {
        self.state.stalled.send_replace(true);
    }

    pub fn unstall(&self) {
        self.state.stalled.send_replace(false);
    }

    /// A handle that can cut and heal from another task.
    pub fn handle(&self) -> ProxyHandle {
        ProxyHandle(self.state.clone())
    }

    /// Connections refused since the proxy started.
    pub fn refused(&self) -> u64 {
        *self.state.refused.borrow()
    }

    /// Waits until a component has tried (and failed) to connect more than `after` times in
    /// all: proof that it noticed the cut and is trying to reconnect.
    pub async fn wait_for_refusals(&self, after: u64) {
        let mut refused = self.state.refused.subscribe();
        tokio::time::timeout(
            crate::EVENT_TIMEOUT,
            refused.wait_for(|count| *count > after),
        )
        .await
        .expect("no component tried to reconnect through the cut proxy")
        .expect("the proxy is alive");
    }
}

#[derive(Clone)]
pub struct ProxyHandle(Arc<State>);

impl ProxyHandle {
    pub fn cut(&self) {
        self.0.down.store(true, Ordering::SeqCst);
        self.0.cuts.send_modify(|cuts| *cuts += 1);
    }

    pub fn heal(&self) {
        self.0.down.store(false, Ordering::SeqCst);
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
            state.refused.send_modify(|count| *count += 1);
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
            let (client_read, client_write) = client.split();
            let (upstream_read, upstream_write) = upstream.split();
            tokio::select! {
                () = forward(client_read, upstream_write, &state.stalled) => {}
                () = forward(upstream_read, client_write, &state.stalled) => {}
                _ = cuts.changed() => {}
            }
            // Dropping both streams closes them: the component sees its connection die.
        });
    }
}

/// Copies `from` to `to` until either ends, holding what it read while the proxy is stalled.
async fn forward(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    stalled: &watch::Sender<bool>,
) {
    let mut stalled = stalled.subscribe();
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        if stalled.wait_for(|stalled| !*stalled).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
