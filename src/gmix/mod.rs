//! The Gaussian-mixture core: Gaussians and mixtures, models, convolution, shapes, Jacobians
//! and the exponential functions of the pixel kernels.

pub mod fastexp;
pub mod gauss;
pub mod jacobian;
pub mod models;
pub mod moments;
pub mod shape;

pub use gauss::{GMix, Gauss2D};
pub use jacobian::Jacobian;
pub use models::{Model, SimpleKind, Tables};
pub use shape::Shape;
