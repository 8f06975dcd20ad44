-- Run by an idle consumer when the next delayed job is due or lease runs out: recover, promote,
-- and hand out tokens so some blocked pop takes the work. Returns ms to the next event (-1).
recover_expired_leases()
promote_due_jobs()
sync_tokens()
return next_event_in()
