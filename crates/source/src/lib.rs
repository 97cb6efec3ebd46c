//! Log sources: file tailing with inotify wake-ups and stat polling, rotation, positions.
