//! Reads an import file through [`BatchReader`] and prints how fast: the reader's own rate,
//! without a store. `cargo run --release -p myna-claims --example read_rate -- FILE`

use myna_claims::BatchReader;
use std::io::BufReader;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: read_rate FILE");
        return ExitCode::from(2);
    };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{}: {e}", path.to_string_lossy());
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let mut reader = BatchReader::new(BufReader::with_capacity(1 << 20, file));
    let (mut batches, mut items) = (0u64, 0u64);
    loop {
        match reader.next_batch() {
            Ok(Some(batch)) => {
                batches += 1;
                items += batch.len();
            }
            Ok(None) => break,
            Err(e) => {
                eprintln!("{}: {e}", path.to_string_lossy());
                return ExitCode::FAILURE;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    let mib = reader.bytes_read() as f64 / 1_048_576.0;
    println!(
        "{batches} batches, {items} items, {} lines, {mib:.1} MiB in {seconds:.2} s: \
         {:.0} items/s, {:.0} MiB/s",
        reader.lines_read(),
        items as f64 / seconds,
        mib / seconds
    );
    ExitCode::SUCCESS
}
