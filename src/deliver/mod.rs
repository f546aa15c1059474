//! Delivery of finished archives to the administrators: signed download
//! links (and, with issue 9a, the mail that carries them).

pub mod links;
