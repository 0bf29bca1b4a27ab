// troupe web UI: live updates
