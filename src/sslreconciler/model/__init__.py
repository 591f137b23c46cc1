"""The shared vocabulary: statuses, finding codes, errors."""
