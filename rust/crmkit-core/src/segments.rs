//! The segment rule language: parse, compile, evaluate.
