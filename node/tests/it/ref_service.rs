//! (tests arrive with the read path)
