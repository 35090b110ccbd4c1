//! Why a model's parameters are refused when its file loads, and why a fit failed: typed, so
//! a caller can tell them apart; the messages are what the model file's problem reports.

/// Parameters this build cannot use (a model file edited, or written by another build).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamsError {
    /// A whole-number setting outside `1..=max`.
    #[error("{name} {value} is outside 1..={max}")]
    OutOfRange {
        name: &'static str,
        value: u32,
        max: u32,
    },
    #[error("beta parameters must be positive")]
    Beta,
    #[error("population normals must be finite with a positive spread")]
    Normals,
    #[error("mcc_weight must be positive")]
    MccWeight,
    #[error("inputs {found:?} differ from this build's {expected:?}")]
    Inputs {
        found: Vec<String>,
        expected: Vec<String>,
    },
    #[error("expected {0} coefficients")]
    Coefficients(usize),
    #[error("mixture parameters do not match {features} features and 1..={max} components")]
    Mixture { features: usize, max: usize },
    #[error("calibration table has the wrong length")]
    Calibration,
    #[error("a precision matrix is not positive definite")]
    Precision,
}

impl ParamsError {
    /// `Err(OutOfRange)` unless `1 <= value <= max`.
    pub fn check_range(name: &'static str, value: u32, max: u32) -> Result<(), Self> {
        if value == 0 || value > max {
            return Err(Self::OutOfRange { name, value, max });
        }
        Ok(())
    }
}

/// A fit that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error("{0} purchases are too few to fit")]
    TooFew(usize),
    /// linfa's error, as text.
    #[error("Gaussian mixture: {0}")]
    Mixture(String),
    #[error("logistic regression: {0}")]
    Logistic(String),
    /// The fitted parameters were refused (e.g. a degenerate mixture).
    #[error(transparent)]
    Params(#[from] ParamsError),
}
