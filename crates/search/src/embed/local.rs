//! `local:PATH`: a sentence-transformers model directory run in process on the CPU.
