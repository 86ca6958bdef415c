//! Reading a store: `list`, `get`, `watch`.

use super::{stdout_line, Outcome};
use crate::failure::Context;
use aimm_backend_api::{Model, ModelInfo};
use aimm_backend_loader::BackendHandle;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

pub(super) async fn list(backend: &BackendHandle, json: bool) -> Outcome {
    let infos = backend.list_models().await?;
    if json {
        let array: Vec<_> = infos.iter().map(info_json).collect();
        return stdout_line(&serde_json::Value::Array(array).to_string());
    }
    let mut out = std::io::stdout().lock();
    for info in infos.iter() {
        writeln!(
            out,
            "{}\t{}\t{}",
            info.instance_id, info.model_type, info.size
        )?;
    }
    out.flush()?;
    Ok(())
}

pub(super) async fn get(backend: &BackendHandle, id: i64, output: Option<&Path>) -> Outcome {
    let model = backend.get_model(id).await?;
    match output {
        Some(path) => std::fs::write(path, model.instance.as_slice())
            .context_with(|| format!("writing model {id} to {}", path.display())),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(model.instance.as_slice())?;
            out.flush()?;
            Ok(())
        }
    }
}

pub(super) async fn watch(backend: &BackendHandle, json: bool) -> Outcome {
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<ModelInfo>();
    let registration = backend
        .register_model_change_cb(Arc::new(move |model: &Model| {
            let _ = sender.send(model.info());
        }))
        .await?;
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            change = receiver.recv() => {
                let Some(info) = change else { break };
                let line = if json {
                    info_json(&info).to_string()
                } else {
                    format!("{}\t{}\t{}", info.instance_id, info.model_type, info.size)
                };
                stdout_line(&line)?;
            }
        }
    }
    backend.unregister_model_change_cb(registration).await?;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn info_json(info: &ModelInfo) -> serde_json::Value {
    serde_json::json!({
        "instance_id": info.instance_id,
        "model_type": info.model_type.as_str(),
        "size": info.size,
    })
}
