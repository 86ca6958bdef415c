//! `copy`: every model of one store into another.

use super::Outcome;
use crate::budget::InFlight;
use crate::failure::{Context, Failure};
use aimm_backend_api::ErrorKind;
use aimm_backend_loader::BackendHandle;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// Most models `copy` has in flight at once: writes that wait for a commit
/// or an event server flush share it.
const COPIES_IN_FLIGHT: usize = 16;

/// Most bytes `copy` holds in flight at once (one larger model goes alone).
const COPY_BYTES_IN_FLIGHT: u64 = 256 << 20;

pub(super) async fn copy(source: &BackendHandle, target: &BackendHandle) -> Outcome {
    let infos = source.list_models().await?;
    let total_bytes: u64 = infos.iter().map(|i| i.size).sum();
    let bar = progress_bar(total_bytes);
    let (mut copied, mut present) = (0u64, 0u64);
    let mut in_flight = tokio::task::JoinSet::new();
    let mut budget = InFlight::new(COPIES_IN_FLIGHT, COPY_BYTES_IN_FLIGHT);
    let mut infos = infos.iter().peekable();
    loop {
        match infos.peek() {
            Some(info) if budget.has_room_for(info.size) => {
                let (id, size) = (info.instance_id, info.size);
                let (source, target) = (source.clone(), target.clone());
                in_flight.spawn(async move { (id, size, copy_one(&source, &target, id).await) });
                budget.start(size);
                infos.next();
            }
            _ => {
                let Some(done) = in_flight.join_next().await else {
                    break;
                };
                let (id, size, outcome) =
                    done.map_err(|err| Failure::operation(anyhow::anyhow!("copy task: {err}")))?;
                match outcome.context_with(|| format!("copying model {id}"))? {
                    Copied::New => copied += 1,
                    Copied::AlreadyThere => present += 1,
                }
                budget.end(size);
                bar.set_message(format!("model {id}"));
                bar.inc(size);
            }
        }
    }
    bar.finish_and_clear();
    eprintln!("copied {copied} models, {present} already present");
    Ok(())
}

/// What `copy_one` did.
enum Copied {
    New,
    AlreadyThere,
}

async fn copy_one(
    source: &BackendHandle,
    target: &BackendHandle,
    id: i64,
) -> Result<Copied, Failure> {
    let model = source.get_model(id).await?;
    match target.import_model(model).await {
        Ok(_) => Ok(Copied::New),
        Err(err) if err.kind == ErrorKind::Conflict => {
            ensure_same(source, target, id).await?;
            Ok(Copied::AlreadyThere)
        }
        Err(err) => Err(Failure::from(err)),
    }
}

/// A re-run of `copy` skips models already copied, but never overwrites a
/// different model that happens to have the same id.
async fn ensure_same(source: &BackendHandle, target: &BackendHandle, id: i64) -> Outcome {
    let ours = source.get_model(id).await?;
    let theirs = target.get_model(id).await?;
    if ours == theirs {
        return Ok(());
    }
    Err(Failure::operation(anyhow::anyhow!(
        "instance id {id} exists in the destination with different content \
         (type {:?}, {} bytes; source has type {:?}, {} bytes); not overwritten",
        theirs.model_type.as_str(),
        theirs.instance.len(),
        ours.model_type.as_str(),
        ours.instance.len()
    )))
}

fn progress_bar(total_bytes: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total_bytes);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}
