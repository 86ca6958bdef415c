//! Writing to a store: `put`, `update`.

use super::{stdout_line, Outcome};
use crate::budget::InFlight;
use crate::failure::{Context, Failure};
use aimm_backend_api::{Model, RVec};
use aimm_backend_loader::BackendHandle;
use std::io::Read;
use std::path::{Path, PathBuf};

fn read_input(path: &Path) -> Result<RVec<u8>, Failure> {
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .context_with(|| "reading standard input".to_string())?;
    } else {
        bytes = std::fs::read(path).context_with(|| format!("cannot read {}", path.display()))?;
    }
    Ok(RVec::from(bytes))
}

pub(super) async fn put(
    backend: &BackendHandle,
    model_type: &str,
    files: &[PathBuf],
    jobs: usize,
) -> Outcome {
    // Refuse before storing anything if a named file is missing.
    let mut sizes = Vec::with_capacity(files.len());
    for file in files {
        let size = match file.as_path() == Path::new("-") {
            true => 0,
            false => std::fs::metadata(file)
                .context_with(|| format!("cannot read {}; nothing was stored", file.display()))?
                .len(),
        };
        sizes.push(size);
    }
    let mut puts = Puts::default();
    let mut budget = InFlight::new(jobs, PUT_BYTES_IN_FLIGHT);
    let mut tasks = tokio::task::JoinSet::new();
    let mut next = 0;
    loop {
        let room = budget.has_room_for(sizes.get(next).copied().unwrap_or(0));
        if puts.failed.is_none() && next < files.len() && room {
            let index = next;
            next += 1;
            let bytes = match read_input(&files[index]) {
                Ok(bytes) => bytes,
                Err(err) => {
                    puts.fail(index, err);
                    continue;
                }
            };
            budget.start(sizes[index]);
            let (backend, model_type) = (backend.clone(), model_type.to_string());
            tasks.spawn(async move {
                let created = backend.create_model(model_type.into(), bytes).await;
                (index, created.map(|m| m.instance_id).map_err(Failure::from))
            });
            continue;
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let (index, created) =
            joined.map_err(|err| Failure::operation(anyhow::anyhow!("put task: {err}")))?;
        budget.end(sizes[index]);
        match created {
            Ok(id) => {
                puts.acknowledged.insert(index, id);
            }
            Err(err) => puts.fail(index, err),
        }
        puts.print_ready()?;
    }
    puts.finish(files)
}

/// Most bytes `put` holds in flight at once (one larger file goes alone).
const PUT_BYTES_IN_FLIGHT: u64 = 256 << 20;

/// What `put` knows of its creates: ids acknowledged but not printed yet
/// (they wait for every earlier file), and the first file that failed.
#[derive(Default)]
struct Puts {
    acknowledged: std::collections::BTreeMap<usize, i64>,
    printed: usize,
    failed: Option<(usize, Failure)>,
}

impl Puts {
    fn fail(&mut self, index: usize, err: Failure) {
        if self.failed.as_ref().is_none_or(|(first, _)| index < *first) {
            self.failed = Some((index, err));
        }
    }

    /// Prints, in the order of the files, every id whose earlier files are
    /// all acknowledged, up to the first failure.
    fn print_ready(&mut self) -> Outcome {
        let stop = self.failed.as_ref().map_or(usize::MAX, |(index, _)| *index);
        while self.printed < stop {
            let Some(id) = self.acknowledged.remove(&self.printed) else {
                break;
            };
            stdout_line(&id.to_string())?;
            self.printed += 1;
        }
        Ok(())
    }

    /// The failure, if any, naming its file; files after it that were
    /// stored anyway (they were in flight) are named on stderr.
    fn finish(self, files: &[PathBuf]) -> Outcome {
        let Some((index, err)) = self.failed else {
            return Ok(());
        };
        for (later, id) in &self.acknowledged {
            eprintln!(
                "{} was stored too, as id {id} (in flight when {} failed; not printed on stdout)",
                files[*later].display(),
                files[index].display()
            );
        }
        Err(err).context_with(|| format!("storing {}", files[index].display()))
    }
}

pub(super) async fn update(
    backend: &BackendHandle,
    id: i64,
    file: &Path,
    model_type: Option<String>,
) -> Outcome {
    let model_type = match model_type {
        Some(model_type) => model_type,
        None => current_type(backend, id).await?,
    };
    let instance = read_input(file)?;
    backend
        .update_model(Model::new(id, model_type, instance))
        .await?;
    Ok(())
}

async fn current_type(backend: &BackendHandle, id: i64) -> Result<String, Failure> {
    let infos = backend.list_models().await?;
    infos
        .iter()
        .find(|info| info.instance_id == id)
        .map(|info| info.model_type.to_string())
        .ok_or_else(|| Failure::from(aimm_backend_api::BackendError::not_found(id)))
}
