//! A TCP fault proxy owned by the harness: it sits between a component under test and a shared
//! server, and can cut every connection and refuse new ones, then heal; or stay connected and
//! go silent (half-open: bytes accepted, nothing answered). Outages are simulated here, never by
//! stopping the shared servers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
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
    /// What open connections pass on: [`FORWARD`], [`DEAF`] or [`BLACKHOLE`].
    mode: AtomicU8,
    /// Bumped by every cut: each proxied connection ends when it changes.
    cuts: watch::Sender<u64>,
    /// Connections refused while down: each is a component trying to reconnect.
    refused: watch::Sender<u64>,
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
            mode: AtomicU8::new(FORWARD),
            cuts: watch::channel(0).0,
            refused: watch::channel(0).0,
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

    /// Keeps every connection open and forwards what the component sends, but drops every
    /// answer: a request reaches the server and is applied, and the component never hears.
    pub fn swallow_answers(&self) {
        self.state.mode.store(DEAF, Ordering::SeqCst);
    }

    /// Half-open: connections stay open and new ones are accepted, bytes are taken in both
    /// directions and nothing is forwarded, as with a peer that hangs or a dropped route.
    pub fn blackhole(&self) {
        self.state.mode.store(BLACKHOLE, Ordering::SeqCst);
    }

    /// [`FaultProxy::blackhole`], under the name the stall tests use.
    pub fn stall(&self) {
        self.blackhole();
    }

    pub fn unstall(&self) {
        self.heal();
    }

    /// A handle that can cut and heal from another task.
    pub fn handle(&self) -> ProxyHandle {
        ProxyHandle(self.state.clone())
    }

    /// Connections refused since the proxy started.
    pub fn refused(&self) -> u64 {
        *self.state.refused.borrow()
    }

    /// An outage the component notices: cuts the link, runs `act` while it is down, waits until
    /// `refusals` new connections (at least one) have been refused — the component is trying to
    /// reconnect — then heals. Returns what `act` returned.
    pub async fn outage<T>(&self, refusals: u64, act: impl AsyncFnOnce() -> T) -> T {
        let refused = self.refused();
        self.cut();
        let acted = act().await;
        self.wait_for_refusals(refused + refusals.max(1) - 1).await;
        self.heal();
        acted
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

    /// Back to forwarding everything (after a cut, a blackhole or swallowed answers).
    pub fn heal(&self) {
        self.0.mode.store(FORWARD, Ordering::SeqCst);
        self.0.down.store(false, Ordering::SeqCst);
    }
}

const FORWARD: u8 = 0;
const DEAF: u8 = 1;
const BLACKHOLE: u8 = 2;

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
            let Ok(upstream) = TcpStream::connect(&state.upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (upstream_read, upstream_write) = upstream.into_split();
            tokio::select! {
                _ = pump(client_read, upstream_write, &state, &[FORWARD, DEAF]) => {}
                _ = pump(upstream_read, client_write, &state, &[FORWARD]) => {}
                _ = cuts.changed() => {}
            }
            // Dropping both streams closes them: the component sees its connection die.
        });
    }
}

/// Copies `from` to `to` while the proxy's mode is one of `passing`; in any other mode what
/// arrives is read and dropped.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, state: &State, passing: &[u8]) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if passing.contains(&state.mode.load(Ordering::SeqCst))
            && to.write_all(&buf[..n]).await.is_err()
        {
            return;
        }
    }
}
