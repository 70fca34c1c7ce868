//! A small HTTP fault proxy on loopback, between the SDK and moto: it forwards every request,
//! except those a test told it to answer with a fault (throttling, any AWS error, a reset
//! connection) or to delay. It counts every request it receives, per operation. Bounded: it
//! listens on loopback only, forwards to loopback only, and refuses bodies above 1 MiB.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// A fault to inject.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// HTTP 400 `TooManyRequestsException`, as Cognito throttles.
    Throttle,
    /// HTTP 500 `InternalErrorException`.
    InternalError,
    /// Any AWS error: HTTP status and error code (e.g. 400, `AccessDeniedException`).
    Error(u16, &'static str),
    /// The connection is closed without an answer.
    Reset,
    /// The request is forwarded after a delay.
    Delay(Duration),
}

struct Rule {
    operation: String,
    fault: Fault,
    remaining: Option<usize>,
}

#[derive(Default)]
struct State {
    rules: Mutex<Vec<Rule>>,
    seen: Mutex<HashMap<String, usize>>,
    arrivals: Mutex<Vec<(String, Instant)>>,
    /// (operation, user pool, arrival) of every request that names a pool.
    pool_arrivals: Mutex<Vec<(String, String, Instant)>>,
}

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    /// The proxy's URL, to use as the endpoint URL.
    pub url: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port in front of `upstream` (an http:// URL).
    pub async fn start(upstream: &str) -> Self {
        assert!(
            upstream.starts_with("http://127.0.0.1:") || upstream.starts_with("http://localhost:"),
            "the fault proxy forwards to loopback only: {upstream}"
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port is free");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State::default());
        let upstream = upstream.trim_end_matches('/').to_owned();
        let client =
            hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let task = {
            let state = state.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let (state, client, upstream) = (state.clone(), client.clone(), upstream.clone());
                    tokio::spawn(async move {
                        let service = service_fn(move |req| {
                            handle(req, state.clone(), client.clone(), upstream.clone())
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        Self { url, state, task }
    }

    /// Answers the next `times` requests of `operation` (every one when `None`) with `fault`.
    pub fn inject(&self, operation: &str, fault: Fault, times: Option<usize>) {
        self.state.rules.lock().unwrap().push(Rule {
            operation: operation.to_owned(),
            fault,
            remaining: times,
        });
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.state.rules.lock().unwrap().clear();
    }

    /// When each request of `operation` reached the proxy, in order.
    pub fn arrivals(&self, operation: &str) -> Vec<Instant> {
        let arrivals = self.state.arrivals.lock().unwrap();
        arrivals
            .iter()
            .filter(|(op, _)| op == operation)
            .map(|(_, t)| *t)
            .collect()
    }

    /// When each request of `operation` for `pool` reached the proxy, in order.
    pub fn arrivals_for(&self, operation: &str, pool: &str) -> Vec<Instant> {
        let arrivals = self.state.pool_arrivals.lock().unwrap();
        arrivals
            .iter()
            .filter(|(op, p, _)| op == operation && p == pool)
            .map(|(_, _, t)| *t)
            .collect()
    }

    /// How many requests of `operation` reached the proxy (faulted or not).
    pub fn seen(&self, operation: &str) -> usize {
        self.state
            .seen
            .lock()
            .unwrap()
            .get(operation)
            .copied()
            .unwrap_or(0)
    }
}

#[derive(Debug)]
struct Reset;
impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by the fault proxy")
    }
}
impl std::error::Error for Reset {}

async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    upstream: String,
) -> Result<Response<Full<Bytes>>, Reset> {
    let operation = req
        .headers()
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("")
        .to_owned();
    *state.seen.lock().unwrap().entry(operation.clone()).or_default() += 1;
    state
        .arrivals
        .lock()
        .unwrap()
        .push((operation.clone(), Instant::now()));
    let fault = {
        let mut rules = state.rules.lock().unwrap();
        let found = rules
            .iter_mut()
            .find(|r| r.operation == operation && r.remaining != Some(0));
        found.map(|r| {
            if let Some(n) = r.remaining.as_mut() {
                *n -= 1;
            }
            r.fault
        })
    };
    match fault {
        Some(Fault::Throttle) => return Ok(aws_error(400, "TooManyRequestsException", "Rate exceeded")),
        Some(Fault::InternalError) => {
            return Ok(aws_error(500, "InternalErrorException", "Internal server error"));
        }
        Some(Fault::Error(status, code)) => {
            return Ok(aws_error(status, code, "injected by the fault proxy"));
        }
        Some(Fault::Reset) => return Err(Reset),
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    let (parts, body) = req.into_parts();
    let body = http_body_util::Limited::new(body, 1 << 20)
        .collect()
        .await
        .map_err(|_| Reset)?
        .to_bytes();
    if let Some(pool) = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|b| b.get("UserPoolId").and_then(|p| p.as_str()).map(str::to_owned))
    {
        state
            .pool_arrivals
            .lock()
            .unwrap()
            .push((operation.clone(), pool, Instant::now()));
    }
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut forward = Request::builder()
        .method(parts.method)
        .uri(format!("{upstream}{path}"));
    for (name, value) in &parts.headers {
        if name != hyper::header::HOST {
            forward = forward.header(name, value);
        }
    }
    let resp = client
        .request(forward.body(Full::new(body)).unwrap())
        .await
        .map_err(|_| Reset)?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|_| Reset)?.to_bytes();
    Ok(Response::from_parts(parts, Full::new(body)))
}

fn aws_error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"__type": code, "message": message}).to_string();
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-errortype", code)
        .header("x-amzn-requestid", "fault-proxy")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// The most requests that arrived within any `window` (the arrivals in any order).
pub fn max_in_window(arrivals: &[Instant], window: Duration) -> usize {
    let mut sorted = arrivals.to_vec();
    sorted.sort();
    (0..sorted.len())
        .map(|i| {
            sorted[i..]
                .iter()
                .take_while(|t| t.duration_since(sorted[i]) < window)
                .count()
        })
        .max()
        .unwrap_or(0)
}
