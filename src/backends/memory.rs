//! In-memory image source used by tests and simulations.

use crate::error::{Error, Result};
use crate::obs::ObjectObs;
use crate::traits::ImageSource;
use std::sync::Arc;

/// Objects held in memory.
#[derive(Debug, Clone)]
pub struct MemorySource {
    objects: Arc<Vec<ObjectObs>>,
    nband: usize,
}

impl MemorySource {
    /// A source over ready-made objects.
    pub fn new(objects: Vec<ObjectObs>, nband: usize) -> Self {
        Self {
            objects: Arc::new(objects),
            nband,
        }
    }
}

impl ImageSource for MemorySource {
    fn nobj(&self) -> usize {
        self.objects.len()
    }
    fn nband(&self) -> usize {
        self.nband
    }
    fn read_object(&mut self, iobj: usize, out: &mut ObjectObs) -> Result<()> {
        let o = self.objects.get(iobj).ok_or_else(|| {
            Error::Invalid(format!(
                "object index {iobj} out of range (nobj {})",
                self.objects.len()
            ))
        })?;
        out.clone_from(o);
        Ok(())
    }
    fn id_number(&self, iobj: usize) -> Result<(i64, i64)> {
        let o = self.objects.get(iobj).ok_or_else(|| {
            Error::Invalid(format!(
                "object index {iobj} out of range (nobj {})",
                self.objects.len()
            ))
        })?;
        Ok((o.meta.id, o.meta.number))
    }
    fn reopen(&self) -> Result<Self> {
        Ok(self.clone())
    }
}
