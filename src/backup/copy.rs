//! One table's rows: `COPY (SELECT …) TO STDOUT` on the snapshot, streamed
//! into a spool in bounded chunks, feeding the watchdog (and polling the
//! cancellation token through it) as bytes flow.

use std::io::Read;

use crate::archive::writer::Spool;
use crate::error::{Error, Result};
use crate::events::{Event, Progress, Watchdog, BYTES_EVENT_CHUNK};
use crate::pg::{db_err, Snapshot};

pub(super) fn copy_table(
    snap: &mut Snapshot,
    sql: &str,
    spool: &mut Spool,
    watchdog: &Watchdog,
    progress: Progress,
) -> Result<()> {
    use std::io::Write;
    // Closure ctid lists can be long; the start of the statement is enough.
    tracing::debug!(sql = %sql.chars().take(300).collect::<String>(), "COPY out");
    let mut reader = snap.client.copy_out(sql).map_err(db_err("starting COPY"))?;
    let mut buf = vec![0u8; 128 * 1024];
    let mut unreported = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                watchdog.check()?;
                return Err(Error::Db {
                    context: "reading COPY output".into(),
                    message: e.to_string(),
                    retryable: true,
                });
            }
        };
        if n == 0 {
            if unreported > 0 {
                progress(Event::Bytes(unreported));
            }
            return Ok(());
        }
        spool.write_all(&buf[..n]).map_err(|e| Error::io("spooling rows in", "the storage directory", e))?;
        watchdog.tick(n as u64);
        unreported += n as u64;
        if unreported >= BYTES_EVENT_CHUNK {
            progress(Event::Bytes(std::mem::take(&mut unreported)));
        }
        if watchdog.interrupted() {
            return watchdog.check();
        }
    }
}
