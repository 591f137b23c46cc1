"""The daemon shell: loop and schedule, health document and socket, metrics, watch, hook worker, sd_notify, logs."""
