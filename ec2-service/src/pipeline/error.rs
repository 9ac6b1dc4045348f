//! The one error type of the processing core, with a stable kebab-case code for each
//! way a source can be refused or fail.

use super::probe::SourceFormat;

/// Why a source could not be rendered. Every variant is permanent: retrying the same
/// bytes with the same recipe gives the same answer.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("source is {size} bytes, over the limit of {limit} bytes")]
    SourceTooLarge { size: u64, limit: u64 },

    #[error("source is empty (0 bytes)")]
    EmptySource,

    #[error("unsupported format: {0}")]
    UnsupportedFormat(String),

    #[error("corrupt {format} image: {detail}")]
    CorruptImage {
        format: SourceFormat,
        detail: String,
    },

    #[error("{width}x{height} is over the dimension limit of {max_width}x{max_height}")]
    DimensionsTooLarge {
        width: u64,
        height: u64,
        max_width: u32,
        max_height: u32,
    },

    #[error("{pixels} pixels is over the limit of {limit} pixels")]
    TooManyPixels { pixels: u64, limit: u64 },

    #[error("{frames} frames is over the limit of {limit} frames")]
    TooManyFrames { frames: u64, limit: u32 },

    #[error("over the memory limit: {0}")]
    MemoryLimit(String),

    #[error("could not encode variant {variant} as {format}: {detail}")]
    Encode {
        variant: String,
        format: &'static str,
        detail: String,
    },

    #[error("internal error while rendering: {0}")]
    Internal(String),
}

impl PipelineError {
    /// The stable, kebab-case code that records, logs and the CLI show.
    pub fn code(&self) -> &'static str {
        match self {
            PipelineError::SourceTooLarge { .. } => "source-too-large",
            PipelineError::EmptySource => "empty-source",
            PipelineError::UnsupportedFormat(_) => "unsupported-format",
            PipelineError::CorruptImage { .. } => "corrupt-image",
            PipelineError::DimensionsTooLarge { .. } => "dimensions-too-large",
            PipelineError::TooManyPixels { .. } => "too-many-pixels",
            PipelineError::TooManyFrames { .. } => "too-many-frames",
            PipelineError::MemoryLimit(_) => "over-memory-limit",
            PipelineError::Encode { .. } => "encode-failed",
            PipelineError::Internal(_) => "internal-error",
        }
    }

    pub(crate) fn corrupt(format: SourceFormat, detail: impl Into<String>) -> Self {
        PipelineError::CorruptImage {
            format,
            detail: detail.into(),
        }
    }
}
