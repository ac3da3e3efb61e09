//! `inject --kustomize DIR` (filled in below).
