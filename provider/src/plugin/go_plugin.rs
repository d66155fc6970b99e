//! The services go-plugin expects beside the provider itself: the controller (Shutdown),
//! stdio forwarding and the broker. Terraform opens the stdio and broker streams on every
//! launch and ends every launch with Shutdown.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use super::proto::plugin::{
    grpc_broker_server::GrpcBroker, grpc_controller_server::GrpcController,
    grpc_stdio_server::GrpcStdio, ConnInfo, Empty, StdioData,
};

/// GRPCController: `Shutdown` asks the whole process to stop; `main` exits once the answer
/// has been sent (Terraform waits up to 2 s for the exit, then kills the plugin).
pub struct Controller {
    pub shutdown: CancellationToken,
}

#[tonic::async_trait]
impl GrpcController for Controller {
    async fn shutdown(&self, _request: Request<Empty>) -> Result<Response<Empty>, Status> {
        tracing::debug!("shutdown requested by Terraform");
        self.shutdown.cancel();
        Ok(Response::new(Empty {}))
    }
}

/// GRPCStdio: go-plugin can forward a plugin's stdout/stderr over gRPC. Ours write logs to
/// stderr directly (go-plugin reads the process's stderr), so the stream stays open and
/// silent until shutdown.
pub struct Stdio {
    pub shutdown: CancellationToken,
}

#[tonic::async_trait]
impl GrpcStdio for Stdio {
    async fn stream_stdio(
        &self,
        _request: Request<()>,
    ) -> Result<Response<BoxStream<StdioData>>, Status> {
        let done = self.shutdown.clone();
        let stream = async_stream_until(done);
        Ok(Response::new(stream))
    }
}

/// GRPCBroker: multiplexes extra connections between plugins; Terraform providers never
/// use it, but Terraform opens the stream. We read (and drop) what arrives and send nothing.
pub struct Broker {
    pub shutdown: CancellationToken,
}

#[tonic::async_trait]
impl GrpcBroker for Broker {
    async fn start_stream(
        &self,
        request: Request<Streaming<ConnInfo>>,
    ) -> Result<Response<BoxStream<ConnInfo>>, Status> {
        let mut incoming = request.into_inner();
        tokio::spawn(async move {
            while let Some(msg) = incoming.next().await {
                match msg {
                    Ok(info) => {
                        tracing::debug!(service_id = info.service_id, "broker message ignored")
                    }
                    Err(_) => break,
                }
            }
        });
        Ok(Response::new(async_stream_until(self.shutdown.clone())))
    }
}

/// A stream that yields nothing and ends when `done` is cancelled.
fn async_stream_until<T: Send + 'static>(done: CancellationToken) -> BoxStream<T> {
    Box::pin(UntilCancelled {
        done: Box::pin(done.cancelled_owned()),
        item: std::marker::PhantomData,
    })
}

struct UntilCancelled<T> {
    done: Pin<Box<WaitForCancellationFutureOwned>>,
    item: std::marker::PhantomData<fn() -> T>,
}

impl<T> Stream for UntilCancelled<T> {
    type Item = Result<T, Status>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.done.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}
