"""The HR syncs' logic as plain functions over frames: config, mapping, validation, plan, diff, absences."""
