//! Crash-and-corruption scenarios for the ipc workspace (work in progress).
