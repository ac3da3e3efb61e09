//! kubectl's connection flags (`--kubeconfig`, `--context`, `-n`, `-A`) and
//! the client built from them, with the API server's `Warning` headers
//! shown to the user as kubectl shows them.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::Error;

/// The field manager of every write the plugin makes.
pub const FIELD_MANAGER: &str = "kubectl-bpc";

/// Connection flags shared by every command that talks to a cluster.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KubeArgs {
    /// Path to the kubeconfig file [default: $KUBECONFIG, ~/.kube/config, or in-cluster].
    #[arg(long, global = true, env = "KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace [default: the context's namespace].
    #[arg(short = 'n', long, global = true, value_name = "NS")]
    pub namespace: Option<String>,
    /// Every namespace (where the command supports it).
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
}

/// A connected client and the namespace commands act in.
#[derive(Clone)]
pub struct Kube {
    /// The client.
    pub client: kube::Client,
    /// `-n`, else the context's namespace, else "default".
    pub namespace: String,
    /// Whether `-A` was given.
    pub all_namespaces: bool,
}

impl Kube {
    /// Wraps an existing client (tests use a mock service).
    pub fn new(client: kube::Client, namespace: &str) -> Kube {
        Kube { client, namespace: namespace.to_owned(), all_namespaces: false }
    }

    /// The namespace to list in: `None` for every namespace.
    pub fn scope(&self) -> Option<&str> {
        (!self.all_namespaces).then_some(self.namespace.as_str())
    }

    /// The API server's minor version (`/version`), e.g. 34 for v1.34.4;
    /// providers' suffixes (`"29+"`) are ignored.
    pub async fn server_minor(&self) -> Result<u32, Error> {
        let info = self.client.apiserver_version().await?;
        parse_minor(&info.minor).ok_or_else(|| {
            Error::Config(format!(
                "the API server reports version {}.{} ({}), whose minor number cannot be read: \
                 pass --sidecar native or --sidecar container",
                info.major, info.minor, info.git_version
            ))
        })
    }
}

/// The number at the start of a `/version` minor field (`"29+"` -> 29).
fn parse_minor(minor: &str) -> Option<u32> {
    let digits: String = minor.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

impl KubeArgs {
    /// Loads the configuration (kubeconfig, or in-cluster when there is none)
    /// and builds a client that prints the API server's warnings.
    pub async fn connect(&self) -> Result<Kube, Error> {
        let options = KubeConfigOptions { context: self.context.clone(), ..Default::default() };
        let failed = |e: &dyn std::fmt::Display| {
            Error::Config(format!(
                "cannot load the Kubernetes configuration: {e}; set --kubeconfig or KUBECONFIG, or --context"
            ))
        };
        let config = match &self.kubeconfig {
            Some(path) => {
                let kc = Kubeconfig::read_from(path).map_err(|e| {
                    Error::Config(format!(
                        "cannot read kubeconfig {}: {e}; check --kubeconfig/KUBECONFIG",
                        path.display()
                    ))
                })?;
                kube::Config::from_custom_kubeconfig(kc, &options).await.map_err(|e| failed(&e))?
            }
            None if self.context.is_some() => {
                kube::Config::from_kubeconfig(&options).await.map_err(|e| failed(&e))?
            }
            None => kube::Config::infer().await.map_err(|e| failed(&e))?,
        };
        let namespace = self.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
        let builder = ClientBuilder::try_from(config)
            .map_err(|e| Error::Config(format!("cannot build a Kubernetes client: {e}")))?;
        let client = builder.with_layer(&WarningLayer::to_stderr()).build();
        Ok(Kube { client, namespace, all_namespaces: self.all_namespaces })
    }
}

/// An API of a namespaced kind over one namespace, or every namespace (`None`).
pub fn scoped_api<K>(client: &kube::Client, namespace: Option<&str>) -> kube::Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => kube::Api::namespaced(client.clone(), ns),
        None => kube::Api::all(client.clone()),
    }
}

/// The text of one `Warning` header (`299 - "text"`, RFC 7234), unquoted.
pub fn warning_text(header: &str) -> Option<String> {
    let rest = header.trim();
    let (code, rest) = rest.split_once(' ')?;
    code.parse::<u16>().ok()?;
    let (_agent, text) = rest.trim_start().split_once(' ')?;
    let text = text.trim();
    let unquoted = text.strip_prefix('"').and_then(|t| t.rsplit_once('"').map(|x| x.0)).unwrap_or(text);
    Some(unquoted.replace("\\\"", "\"").replace("\\\\", "\\"))
}

/// A tower layer that hands every distinct `Warning` header of the API
/// server's responses to a sink (stderr for the user, a vector in tests).
#[derive(Clone)]
pub struct WarningLayer {
    sink: Arc<dyn Fn(&str) + Send + Sync>,
    seen: Arc<Mutex<BTreeSet<String>>>,
}

impl WarningLayer {
    /// Prints `Warning: TEXT` on stderr, once per distinct text, like kubectl.
    pub fn to_stderr() -> WarningLayer {
        WarningLayer::with_sink(|w| eprintln!("Warning: {w}"))
    }

    /// Hands each distinct warning to `sink`.
    pub fn with_sink(sink: impl Fn(&str) + Send + Sync + 'static) -> WarningLayer {
        WarningLayer { sink: Arc::new(sink), seen: Arc::default() }
    }

    fn observe<B>(&self, response: &http::Response<B>) {
        for value in response.headers().get_all(http::header::WARNING) {
            let Some(text) = value.to_str().ok().and_then(warning_text) else { continue };
            if self.seen.lock().map(|mut s| s.insert(text.clone())).unwrap_or(true) {
                (self.sink)(&text);
            }
        }
    }
}

impl<S> tower::Layer<S> for WarningLayer {
    type Service = WarningService<S>;

    fn layer(&self, inner: S) -> WarningService<S> {
        WarningService { inner, layer: self.clone() }
    }
}

/// The service [`WarningLayer`] wraps around the client's stack.
#[derive(Clone)]
pub struct WarningService<S> {
    inner: S,
    layer: WarningLayer,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for WarningService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    ResBody: Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let response = self.inner.call(request);
        let layer = self.layer.clone();
        Box::pin(async move {
            let response = response.await?;
            layer.observe(&response);
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_minor_version_is_the_leading_number_of_the_field() {
        assert_eq!(super::parse_minor("34"), Some(34));
        assert_eq!(super::parse_minor("29+"), Some(29));
        assert_eq!(super::parse_minor(""), None);
    }

    use super::*;

    #[test]
    fn warning_headers_are_unquoted() {
        assert_eq!(
            warning_text(
                r#"299 - "would violate PodSecurity \"baseline:latest\": non-default capabilities""#
            )
            .unwrap(),
            r#"would violate PodSecurity "baseline:latest": non-default capabilities"#
        );
        assert_eq!(warning_text("299 - plain").unwrap(), "plain");
        assert_eq!(warning_text("nonsense"), None);
    }
}
