//! A small Kubernetes API fault proxy on loopback: plain HTTP in front of the real API server
//! (forwarded with an administrator's client). It answers the next status PATCHes with 409
//! Conflict when told to, and cuts every open watch stream on demand, as an API server under
//! load or a load balancer does. Bounded: request bodies above 4 MiB are refused.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, BodyStream, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use kube::Client;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
const MAX_BODY: usize = 4 << 20;

#[derive(Default)]
struct State {
    conflicts_left: AtomicUsize,
    conflicts_sent: AtomicUsize,
    status_patches: AtomicUsize,
    watches_cut: AtomicUsize,
}

/// A running proxy; it stops when dropped.
pub struct KubeProxy {
    url: String,
    state: Arc<State>,
    cut: tokio::sync::watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KubeProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl KubeProxy {
    /// Starts a proxy on a free loopback port that forwards with `admin`.
    pub async fn start(admin: Client) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State::default());
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let task = {
            let (state, cut) = (state.clone(), cut.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let (state, admin, cut) = (state.clone(), admin.clone(), cut.subscribe());
                    tokio::spawn(async move {
                        let service = service_fn(move |req| {
                            let (state, admin, cut) = (state.clone(), admin.clone(), cut.clone());
                            async move { Ok::<_, Infallible>(handle(req, state, admin, cut).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        Self {
            url,
            state,
            cut,
            task,
        }
    }

    /// A client that goes through the proxy (the proxy authenticates upstream).
    pub fn client(&self) -> Client {
        let config = kube::Config::new(self.url.parse().unwrap());
        Client::try_from(config).unwrap()
    }

    /// Answers the next `n` status PATCHes with 409 Conflict.
    pub fn conflict_next_status_patches(&self, n: usize) {
        self.state.conflicts_left.store(n, Ordering::SeqCst);
    }

    /// Ends every watch stream open now (their clients see the stream end and watch again).
    pub fn break_watches(&self) {
        self.cut.send_modify(|g| *g += 1);
    }

    /// Status PATCHes received (answered or refused).
    pub fn status_patches(&self) -> usize {
        self.state.status_patches.load(Ordering::SeqCst)
    }

    /// 409s sent.
    pub fn conflicts_sent(&self) -> usize {
        self.state.conflicts_sent.load(Ordering::SeqCst)
    }

    /// Watch streams cut.
    pub fn watches_cut(&self) -> usize {
        self.state.watches_cut.load(Ordering::SeqCst)
    }
}

fn full(status: u16, body: String) -> Response<UnsyncBoxBody<Bytes, BoxError>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(
            Full::new(Bytes::from(body))
                .map_err(|e: Infallible| -> BoxError { match e {} })
                .boxed_unsync(),
        )
        .unwrap()
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
    admin: Client,
    mut cut: tokio::sync::watch::Receiver<u64>,
) -> Response<UnsyncBoxBody<Bytes, BoxError>> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or_default().to_owned();
    if parts.method == hyper::Method::PATCH && path.ends_with("/status") {
        state.status_patches.fetch_add(1, Ordering::SeqCst);
        let refuse = state
            .conflicts_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if refuse {
            state.conflicts_sent.fetch_add(1, Ordering::SeqCst);
            let status = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": "Operation cannot be fulfilled: the object has been modified (injected by the fault proxy)",
                "reason": "Conflict", "code": 409});
            return full(409, status.to_string());
        }
    }
    let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return full(
                413,
                r#"{"message":"request body too large for the fault proxy"}"#.into(),
            );
        }
    };
    let mut forward = hyper::Request::builder().method(parts.method).uri(format!(
        "{path}{}",
        if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        }
    ));
    for (name, value) in &parts.headers {
        if name != hyper::header::HOST && name != hyper::header::CONTENT_LENGTH {
            forward = forward.header(name, value);
        }
    }
    let response = match admin
        .send(forward.body(kube::client::Body::from(body.to_vec())).unwrap())
        .await
    {
        Ok(r) => r,
        Err(e) => return full(502, serde_json::json!({"message": e.to_string()}).to_string()),
    };
    let (parts, body) = response.into_parts();
    let is_watch = query.split('&').any(|kv| kv == "watch=true" || kv == "watch=1");
    let body: UnsyncBoxBody<Bytes, BoxError> = if is_watch {
        // Ends the stream when told to: the next generation of the cut signal.
        cut.borrow_and_update();
        let state = state.clone();
        let ended = async move {
            let _ = cut.changed().await;
            state.watches_cut.fetch_add(1, Ordering::SeqCst);
        };
        let frames = BodyStream::new(body)
            .map(|f| f.map_err(|e| -> BoxError { Box::new(e) }))
            .take_until(Box::pin(ended));
        BodyExt::boxed_unsync(StreamBody::new(frames))
    } else {
        body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync()
    };
    Response::from_parts(parts, body)
}
