//! Vector files of this layer.

use crate::VectorFile;

/// The vector files this module generates and checks.
pub const FILES: &[VectorFile] = &[];
