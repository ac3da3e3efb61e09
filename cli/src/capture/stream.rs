//! One pod's capture stream: the plugin attaches to the agent's stdin and
//! stdout, starts it with one byte, forwards its pcapng, and stops it with
//! another.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::Planned;
use crate::kube_context::Kube;

/// What a pod's attach task reports.
pub(super) enum Event {
    /// Bytes of the agent's stdout.
    Data(usize, Vec<u8>),
    /// The stream ended (with why, if it failed).
    End(usize, Option<String>),
}

/// Attaches to the container, starts the agent, forwards its stdout, and
/// stops it when `stop` fires.
pub(super) async fn stream_pod(
    kube: Kube,
    plan: Planned,
    index: usize,
    events: mpsc::Sender<Event>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let api: Api<Pod> = Api::namespaced(kube.client.clone(), &plan.namespace);
    let ap = AttachParams::default()
        .container(plan.container_name())
        .stdin(true)
        .stdout(true)
        .stderr(false)
        .tty(false);
    let mut attached = match api.attach(&plan.pod, &ap).await {
        Ok(a) => a,
        Err(e) => {
            let _ = events.send(Event::End(index, Some(format!("attach failed: {e}")))).await;
            return;
        }
    };
    let (Some(stdin), Some(stdout)) = (attached.stdin(), attached.stdout()) else {
        let _ = events.send(Event::End(index, Some("attach gave no stdin/stdout".into()))).await;
        return;
    };
    let outcome = forward_stream(stdin, stdout, index, &events, stop).await;
    attached.abort();
    let _ = events.send(Event::End(index, outcome)).await;
}

/// The capture protocol over an attached agent's stdin and stdout: one byte
/// starts the agent, its pcapng is forwarded as it comes, a second byte when
/// `stop` fires makes it flush and end the stream. Returns why the stream
/// failed, or `None` when it ended (the agent exited, or the receiver went).
async fn forward_stream(
    mut stdin: impl tokio::io::AsyncWrite + Unpin,
    mut stdout: impl tokio::io::AsyncRead + Unpin,
    index: usize,
    events: &mpsc::Sender<Event>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Option<String> {
    if let Err(e) = stdin.write_all(b"s").await {
        return Some(format!("cannot start the agent: {e}"));
    }
    let mut buf = vec![0u8; 256 << 10];
    let mut stop_sent = false;
    loop {
        tokio::select! {
            read = stdout.read(&mut buf) => match read {
                Ok(0) => return None,
                Ok(n) => {
                    if events.send(Event::Data(index, buf[..n].to_vec())).await.is_err() {
                        return None;
                    }
                }
                Err(e) => return Some(format!("stream failed: {e}")),
            },
            changed = stop.changed(), if !stop_sent => {
                stop_sent = true;
                if changed.is_ok() {
                    // A second byte: the agent stops, flushes, and ends the stream.
                    let _ = stdin.write_all(b"q").await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::merge::Demux;

    /// Runs [`forward_stream`] over in-memory pipes: the test plays the agent
    /// (reads its stdin, writes its stdout) through `agent`.
    async fn with_agent<F, Fut>(agent: F) -> (Option<String>, Vec<u8>)
    where
        F: FnOnce(tokio::io::DuplexStream, tokio::io::DuplexStream, tokio::sync::watch::Sender<bool>) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let (stdin, agent_stdin) = tokio::io::duplex(64);
        let (agent_stdout, stdout) = tokio::io::duplex(1 << 16);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let (events_tx, mut events_rx) = mpsc::channel(64);
        let forward =
            tokio::spawn(async move { forward_stream(stdin, stdout, 3, &events_tx, stop_rx).await });
        agent(agent_stdin, agent_stdout, stop_tx).await;
        let outcome = forward.await.unwrap();
        let mut data = Vec::new();
        while let Ok(event) = events_rx.try_recv() {
            match event {
                Event::Data(3, bytes) => data.extend(bytes),
                Event::Data(i, _) => panic!("data tagged {i}, not 3"),
                Event::End(..) => panic!("forward_stream reports its end by returning"),
            }
        }
        (outcome, data)
    }

    #[tokio::test]
    async fn the_agent_is_started_and_stopped_by_one_byte_each_and_its_stream_arrives_whole() {
        let (outcome, data) = with_agent(|mut stdin, mut stdout, stop| async move {
            let mut byte = [0u8; 1];
            stdin.read_exact(&mut byte).await.unwrap();
            assert_eq!(&byte, b"s", "the start byte comes first");
            stdout.write_all(b"block one ").await.unwrap();
            stop.send(true).unwrap();
            stdin.read_exact(&mut byte).await.unwrap();
            assert_eq!(&byte, b"q", "the stop byte follows the stop");
            // The agent flushes what it still has, then ends the stream.
            stdout.write_all(b"block two").await.unwrap();
            drop(stdout);
        })
        .await;
        assert_eq!(outcome, None);
        assert_eq!(data, b"block one block two");
    }

    #[tokio::test]
    async fn a_pod_that_ends_mid_stream_ends_the_forwarding_and_keeps_the_complete_blocks() {
        let stream = {
            let mut w = pcap_file::pcapng::PcapNgWriter::new(Vec::new()).unwrap();
            w.write_pcapng_block(
                pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock {
                    linktype: pcap_file::DataLink::ETHERNET,
                    snaplen: 65535,
                    options: vec![],
                },
            )
            .unwrap();
            for ts in [10u64, 20] {
                w.write_pcapng_block(pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock {
                    interface_id: 0,
                    timestamp: Duration::from_nanos(ts),
                    original_len: 60,
                    data: std::borrow::Cow::Owned(vec![0xab; 60]),
                    options: vec![],
                })
                .unwrap();
            }
            w.into_inner()
        };
        let cut = stream.len() - 30;
        let sent = stream[..cut].to_vec();
        let (outcome, data) = with_agent(|mut stdin, mut stdout, _stop| async move {
            let mut byte = [0u8; 1];
            stdin.read_exact(&mut byte).await.unwrap();
            stdout.write_all(&sent).await.unwrap();
            // The pod is deleted: the stream ends with no stop asked for.
        })
        .await;
        assert_eq!(outcome, None, "an ended stream is not a failure of the plugin");
        assert_eq!(data, &stream[..cut]);
        let mut demux = Demux::default();
        let items = demux.push(&data).unwrap();
        assert_eq!(items.len(), 1, "the complete packet is kept, the cut one is not: {items:?}");
        assert!(demux.pending() > 0, "the cut block is reported as pending");
    }

    #[tokio::test]
    async fn an_agent_that_is_gone_before_the_start_byte_is_a_failure_naming_it() {
        let (outcome, data) = with_agent(|stdin, stdout, _stop| async move {
            drop((stdin, stdout));
        })
        .await;
        assert!(outcome.as_deref().is_some_and(|o| o.starts_with("cannot start the agent")), "{outcome:?}");
        assert!(data.is_empty());
    }
}
