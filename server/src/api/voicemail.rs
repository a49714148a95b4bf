//! `caruso.v1.Voicemail`: list, fetch (streamed WAV), file and delete messages, over
//! the shared [`Voicemail`] storage. Errors become statuses in [`ApiError`]'s `From`.

use std::pin::Pin;
use std::sync::Arc;

use caruso_proto::caruso::v1::{
    voicemail_server, AudioChunk, DeleteMessageRequest, DeleteMessageResponse, GetAudioRequest,
    GetMailboxRequest, ListMessagesRequest, ListMessagesResponse, MailboxFolder, MailboxInfo,
    MarkMessageRequest, VoicemailMessage,
};
use tokio::io::AsyncReadExt;
use tonic::codegen::tokio_stream::{wrappers::ReceiverStream, Stream};
use tonic::{Request, Response, Status};

use super::ApiError;
use crate::voicemail::{Folder, MessageMeta, Voicemail, VoicemailAccess};

/// Largest `AudioChunk.data`.
pub const AUDIO_CHUNK: usize = 32 * 1024;

/// Implementation of the `caruso.v1.Voicemail` gRPC service.
#[derive(Debug, Clone)]
pub struct VoicemailService {
    vm: Arc<Voicemail>,
}

impl VoicemailService {
    /// The service over the server's voicemail storage.
    pub fn new(vm: Arc<Voicemail>) -> Self {
        Self { vm }
    }
}

fn folder_out(f: Folder) -> MailboxFolder {
    match f {
        Folder::New => MailboxFolder::New,
        Folder::Saved => MailboxFolder::Saved,
    }
}

fn message_out(m: MessageMeta) -> VoicemailMessage {
    VoicemailMessage {
        folder: folder_out(m.folder).into(),
        id: m.id,
        mailbox: m.mailbox,
        caller_number: m.caller_number,
        caller_name: m.caller_name,
        received_ms: m.received_ms,
        duration_ms: m.duration_ms,
        recovered: m.recovered,
    }
}

/// The folder of a request; `None` for UNSPECIFIED; unknown numbers are invalid.
fn folder_in(raw: i32) -> Result<Option<Folder>, ApiError> {
    match MailboxFolder::try_from(raw) {
        Ok(MailboxFolder::Unspecified) => Ok(None),
        Ok(MailboxFolder::New) => Ok(Some(Folder::New)),
        Ok(MailboxFolder::Saved) => Ok(Some(Folder::Saved)),
        Err(_) => Err(ApiError::InvalidArgument(format!("unknown folder {raw}"))),
    }
}

fn required<'a>(what: &str, v: &'a str) -> Result<&'a str, ApiError> {
    if v.is_empty() {
        Err(ApiError::InvalidArgument(format!("{what} is required")))
    } else {
        Ok(v)
    }
}

/// The stream type of `GetAudio`.
pub type AudioStream = Pin<Box<dyn Stream<Item = Result<AudioChunk, Status>> + Send>>;

#[tonic::async_trait]
impl voicemail_server::Voicemail for VoicemailService {
    async fn get_mailbox(
        &self,
        request: Request<GetMailboxRequest>,
    ) -> Result<Response<MailboxInfo>, Status> {
        let mailbox = request.into_inner().mailbox;
        let number = required("mailbox", &mailbox)?;
        let cfg = self
            .vm
            .mailbox(number)
            .ok_or_else(|| ApiError::NotFound(format!("mailbox {number}")))?;
        let (new_count, saved_count) = self.vm.counts(number).map_err(ApiError::from)?;
        Ok(Response::new(MailboxInfo {
            mailbox: cfg.number,
            owner: cfg.owner,
            new_count,
            saved_count,
            max_messages: u32::try_from(cfg.max_messages).unwrap_or(u32::MAX),
        }))
    }

    async fn list_messages(
        &self,
        request: Request<ListMessagesRequest>,
    ) -> Result<Response<ListMessagesResponse>, Status> {
        let req = request.into_inner();
        let mailbox = required("mailbox", &req.mailbox)?;
        let folder = folder_in(req.folder)?;
        let messages = self
            .vm
            .list(mailbox, folder)
            .map_err(ApiError::from)?
            .into_iter()
            .map(message_out)
            .collect();
        Ok(Response::new(ListMessagesResponse { messages }))
    }

    type GetAudioStream = AudioStream;

    async fn get_audio(
        &self,
        request: Request<GetAudioRequest>,
    ) -> Result<Response<Self::GetAudioStream>, Status> {
        let id = request.into_inner().id;
        let path = self
            .vm
            .audio_path(required("id", &id)?)
            .map_err(ApiError::from)?;
        // Opened before answering: a message deleted while streaming still streams.
        let mut file = tokio::fs::File::open(&path).await.map_err(|e| {
            ApiError::from(crate::voicemail::VoicemailError::File {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
        })?;
        let total_bytes = file
            .metadata()
            .await
            .map(|m| m.len())
            .map_err(|e| Status::internal(e.to_string()))?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut offset = 0u64;
            let mut buf = vec![0u8; AUDIO_CHUNK];
            loop {
                let n = match file.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx.send(Err(Status::internal(e.to_string()))).await;
                        break;
                    }
                };
                let chunk = AudioChunk {
                    data: buf[..n].to_vec(),
                    offset,
                    total_bytes,
                };
                offset += n as u64;
                if tx.send(Ok(chunk)).await.is_err() {
                    break; // the client went away
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn mark_message(
        &self,
        request: Request<MarkMessageRequest>,
    ) -> Result<Response<VoicemailMessage>, Status> {
        let req = request.into_inner();
        let id = required("id", &req.id)?;
        let folder = folder_in(req.folder)?
            .ok_or_else(|| ApiError::InvalidArgument("folder must be NEW or SAVED".into()))?;
        self.vm.set_folder(id, folder).map_err(ApiError::from)?;
        let m = self.vm.message(id).map_err(ApiError::from)?;
        Ok(Response::new(message_out(m)))
    }

    async fn delete_message(
        &self,
        request: Request<DeleteMessageRequest>,
    ) -> Result<Response<DeleteMessageResponse>, Status> {
        let id = request.into_inner().id;
        self.vm
            .delete(required("id", &id)?)
            .map_err(ApiError::from)?;
        Ok(Response::new(DeleteMessageResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventBus;
    use crate::ivr::{RecordingKind, RecordingSpec, SaveOutcome};
    use crate::store::{MemoryStore, Store};
    use crate::voicemail::{MailboxConfig, VoicemailConfig};
    use caruso_proto::caruso::v1::voicemail_client::VoicemailClient;
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::time::Duration;
    use tokio::net::TcpListener;
    use tonic::Code;

    struct Fixture {
        dir: PathBuf,
        addr: SocketAddr,
        vm: Arc<Voicemail>,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            if let Some(s) = self.stop.take() {
                let _ = s.send(());
            }
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn samples(seed: i16, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| seed.wrapping_add((i % 3000) as i16))
            .collect()
    }

    async fn leave(vm: &Voicemail, caller: &str, audio: &[i16]) -> String {
        let mut rec = vm
            .start_recording(&RecordingSpec {
                kind: RecordingKind::Message {
                    mailbox: "200".into(),
                    caller_number: caller.into(),
                    caller_name: format!("Caller {caller}"),
                },
                max_len: Duration::from_secs(60),
            })
            .expect("start");
        for f in audio.chunks(160) {
            rec.push(f);
        }
        match rec.save().await.expect("answer") {
            SaveOutcome::Saved(id) => id,
            other => panic!("not saved: {other:?}"),
        }
    }

    /// A server on 127.0.0.1:0 with mailbox 200 holding two messages (1.5 s and 5 s).
    async fn start(tag: &str) -> (Fixture, Vec<String>) {
        let dir = std::env::temp_dir().join(format!("caruso-api-vm-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mailbox = MailboxConfig::new("200", "Alice Example", "1234");
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let vm = Voicemail::open(
            VoicemailConfig {
                mailboxes: vec![mailbox],
            },
            store,
            &dir,
            EventBus::default(),
        )
        .expect("open");
        let ids = vec![
            leave(&vm, "5551000", &samples(10, 12_000)).await,
            leave(&vm, "5552000", &samples(-500, 40_000)).await,
        ];
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stats_tx, stats_rx) =
            tokio::sync::watch::channel(super::super::ServerStats::default());
        std::mem::forget(stats_tx);
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let security = super::super::ApiSecurity::new(super::super::auth::test_policy(&[]));
        tokio::spawn(super::super::serve_on(
            listener,
            crate::api::ApiServices {
                voicemail: Some(vm.clone()),
                ..crate::api::ApiServices::new(stats_rx)
            },
            security,
            async {
                let _ = stop_rx.await;
            },
        ));
        let fixture = Fixture {
            dir,
            addr,
            vm,
            stop: Some(stop),
        };
        (fixture, ids)
    }

    /// Adds the integrator's `authorization` metadata.
    fn integrator(mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        r.metadata_mut()
            .insert("authorization", "Bearer integrator-secret".parse().unwrap());
        Ok(r)
    }

    type Interceptor = fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>;

    /// A client of the fixture's server sending the integrator's token.
    async fn client(
        fx: &Fixture,
    ) -> VoicemailClient<tonic::codegen::InterceptedService<tonic::transport::Channel, Interceptor>>
    {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", fx.addr))
            .expect("url")
            .connect()
            .await
            .expect("connect");
        VoicemailClient::with_interceptor(channel, integrator as Interceptor)
    }

    #[tokio::test]
    async fn list_fetch_mark_and_delete_over_grpc() {
        let (fx, ids) = start("rust").await;
        let mut c = client(&fx).await;

        let info = c
            .get_mailbox(GetMailboxRequest {
                mailbox: "200".into(),
            })
            .await
            .expect("GetMailbox")
            .into_inner();
        assert_eq!(
            (
                info.owner.as_str(),
                info.new_count,
                info.saved_count,
                info.max_messages
            ),
            ("Alice Example", 2, 0, 100)
        );

        let all = c
            .list_messages(ListMessagesRequest {
                mailbox: "200".into(),
                folder: MailboxFolder::Unspecified.into(),
            })
            .await
            .expect("List")
            .into_inner()
            .messages;
        assert_eq!(
            all.iter().map(|m| &m.id).collect::<Vec<_>>(),
            [&ids[0], &ids[1]]
        );
        assert_eq!(all[1].caller_number, "5552000");
        assert_eq!(all[1].caller_name, "Caller 5552000");
        assert_eq!(all[1].duration_ms, 5_000);
        assert_eq!(all[1].folder(), MailboxFolder::New);
        assert!(!all[1].recovered);

        // 5 s of audio = 80 044 bytes: three chunks, in order, the file's bytes.
        let mut stream = c
            .get_audio(GetAudioRequest { id: ids[1].clone() })
            .await
            .expect("GetAudio")
            .into_inner();
        let mut bytes = Vec::new();
        let mut chunks = 0;
        while let Some(chunk) = stream.message().await.expect("chunk") {
            assert_eq!(chunk.offset, bytes.len() as u64);
            assert!(chunk.data.len() <= AUDIO_CHUNK);
            assert_eq!(chunk.total_bytes, 80_044);
            bytes.extend_from_slice(&chunk.data);
            chunks += 1;
        }
        assert_eq!(chunks, 3);
        let path = fx.vm.audio_path(&ids[1]).unwrap();
        assert_eq!(bytes, std::fs::read(path).unwrap());

        let m = c
            .mark_message(MarkMessageRequest {
                id: ids[0].clone(),
                folder: MailboxFolder::Saved.into(),
            })
            .await
            .expect("Mark")
            .into_inner();
        assert_eq!(m.folder(), MailboxFolder::Saved);
        let saved = c
            .list_messages(ListMessagesRequest {
                mailbox: "200".into(),
                folder: MailboxFolder::Saved.into(),
            })
            .await
            .expect("List saved")
            .into_inner()
            .messages;
        assert_eq!(saved.iter().map(|m| &m.id).collect::<Vec<_>>(), [&ids[0]]);

        c.delete_message(DeleteMessageRequest { id: ids[1].clone() })
            .await
            .expect("Delete");
        let info = c
            .get_mailbox(GetMailboxRequest {
                mailbox: "200".into(),
            })
            .await
            .expect("GetMailbox")
            .into_inner();
        assert_eq!((info.new_count, info.saved_count), (0, 1));
        let gone = c
            .get_audio(GetAudioRequest { id: ids[1].clone() })
            .await
            .expect_err("deleted");
        assert_eq!(gone.code(), Code::NotFound);
    }

    fn code<T>(r: Result<Response<T>, Status>) -> Code {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(s) => s.code(),
        }
    }

    #[tokio::test]
    async fn errors_are_not_found_or_invalid_argument() {
        let (fx, ids) = start("errors").await;
        let mut c = client(&fx).await;
        assert_eq!(
            code(
                c.get_mailbox(GetMailboxRequest {
                    mailbox: "999".into()
                })
                .await
            ),
            Code::NotFound
        );
        assert_eq!(
            code(
                c.get_mailbox(GetMailboxRequest {
                    mailbox: String::new()
                })
                .await
            ),
            Code::InvalidArgument
        );
        assert_eq!(
            code(
                c.list_messages(ListMessagesRequest {
                    mailbox: "999".into(),
                    folder: 0
                })
                .await
            ),
            Code::NotFound
        );
        assert_eq!(
            code(
                c.list_messages(ListMessagesRequest {
                    mailbox: "200".into(),
                    folder: 7
                })
                .await
            ),
            Code::InvalidArgument
        );
        assert_eq!(
            code(c.get_audio(GetAudioRequest { id: "nope".into() }).await),
            Code::NotFound
        );
        assert_eq!(
            code(
                c.mark_message(MarkMessageRequest {
                    id: ids[0].clone(),
                    folder: MailboxFolder::Unspecified.into()
                })
                .await
            ),
            Code::InvalidArgument
        );
        assert_eq!(
            code(
                c.mark_message(MarkMessageRequest {
                    id: "nope".into(),
                    folder: MailboxFolder::Saved.into()
                })
                .await
            ),
            Code::NotFound
        );
        assert_eq!(
            code(
                c.delete_message(DeleteMessageRequest { id: String::new() })
                    .await
            ),
            Code::InvalidArgument
        );
        assert_eq!(
            code(
                c.delete_message(DeleteMessageRequest { id: "nope".into() })
                    .await
            ),
            Code::NotFound
        );
        // Nothing changed.
        assert_eq!(fx.vm.counts("200").unwrap(), (2, 0));
    }

    /// Runs tests/python/vm_client.py (grpcio, stubs generated by grpcio-tools) against
    /// the service. `CARUSO_PYTHON` names a Python with those packages: tests/run-all.sh
    /// creates it and exports it; without it the test fails rather than pass unrun.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_python_client_lists_fetches_marks_and_deletes() {
        let python = std::env::var_os("CARUSO_PYTHON").expect(
            "CARUSO_PYTHON is not set: run the tests with `bash tests/run-all.sh` (it \
             installs grpcio in target/pyenv), or set CARUSO_PYTHON to a Python with grpcio",
        );
        let (fx, ids) = start("python").await;
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/python/vm_client.py");
        let server = fx.addr.to_string();
        let run = |args: Vec<String>| {
            let python = python.clone();
            let script = script.clone();
            let server = server.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    let out = std::process::Command::new(python)
                        .arg(script)
                        .arg("--server")
                        .arg(server)
                        .args(["--token", "integrator-secret"])
                        .args(args)
                        .output()
                        .expect("run python");
                    (
                        out.status.code(),
                        String::from_utf8_lossy(&out.stdout).into_owned(),
                        String::from_utf8_lossy(&out.stderr).into_owned(),
                    )
                })
                .await
                .expect("join")
            }
        };
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();

        let (code, out, err) = run(s(&["counts", "200"])).await;
        assert_eq!(code, Some(0), "{err}");
        assert!(
            out.contains("\"new\": 2") && out.contains("\"saved\": 0"),
            "{out}"
        );

        let (code, out, err) = run(s(&["list", "200", "new"])).await;
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains(&ids[0]) && out.contains(&ids[1]), "{out}");
        assert!(out.contains("\"duration_ms\": 5000"), "{out}");

        let wav = fx.dir.join("fetched.wav");
        let (code, out, err) = run(s(&["fetch", &ids[1], wav.to_str().unwrap()])).await;
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains("\"bytes\": 80044"), "{out}");
        let fetched = crate::media::wav::Prompt::load(&wav).expect("valid WAV");
        assert_eq!(fetched.samples(), &samples(-500, 40_000)[..]);

        let (code, out, err) = run(s(&["mark", &ids[0], "saved"])).await;
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains("\"folder\": \"saved\""), "{out}");

        let (code, _, err) = run(s(&["delete", &ids[1]])).await;
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(fx.vm.counts("200").unwrap(), (0, 1));

        let (code, out, _) = run(s(&["delete", &ids[1]])).await;
        assert_eq!(code, Some(1));
        assert!(out.contains("NOT_FOUND"), "{out}");

        // A supervisor's token is known but not allowed here.
        let python = python.clone();
        let script = script.clone();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(python)
                .arg(script)
                .args(["--server", &server, "--token", "supervisor-secret"])
                .args(["counts", "200"])
                .output()
                .expect("run python")
        })
        .await
        .expect("join");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1));
        assert!(text.contains("PERMISSION_DENIED"), "{text}");
        assert!(text.contains("integrator or admin"), "{text}");
    }
}
