//! `--store`: the batch results in the audit store, tagged `source = batch`.

use super::BatchError;
use super::order::OrderRow;
use crate::configuration::Settings;

pub struct BatchStore {}

impl BatchStore {
    pub fn open(_settings: &Settings) -> anyhow::Result<BatchStore> {
        anyhow::bail!("--store is not implemented yet")
    }

    pub fn write(&mut self, _run_id: &str, _rows: &[OrderRow]) -> Result<(), BatchError> {
        Ok(())
    }

    /// (orders added, orders already stored).
    pub fn finish(self) -> anyhow::Result<(u64, u64)> {
        Ok((0, 0))
    }
}
