//! `tether vectors verify|generate`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};

pub(crate) fn verify(dir: &Path) -> anyhow::Result<ExitCode> {
    if !dir.is_dir() {
        bail!(
            "vector directory {} not found (run from the repository root, or pass --dir)",
            dir.display()
        );
    }
    let mut failed = 0usize;
    let mut cases = 0usize;
    for file in &tether_vectors::files() {
        match tether_vectors::verify_file(dir, file) {
            Ok(n) => {
                cases += n;
                println!("ok    {:<28} {n:>5} cases", file.name);
            }
            Err(e) => {
                failed += 1;
                println!("FAIL  {e}");
            }
        }
    }
    if tether_vectors::files().is_empty() {
        bail!("no vector files are registered in this build");
    }
    println!(
        "{} files, {cases} cases, {failed} failed",
        tether_vectors::files().len()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(crate) fn generate(dir: &Path) -> anyhow::Result<ExitCode> {
    let written = tether_vectors::generate_into(dir)
        .with_context(|| format!("writing vectors into {}", dir.display()))?;
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
