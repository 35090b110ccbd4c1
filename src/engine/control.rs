//! Control records in the engine: deduplicated like events, applied at stream time to the lock
//! records by whichever engine owns the target's locks (every stage in one engine; the card or
//! terminal stage shard with scale-out), and the switch's overdue acknowledgements reported.

use super::Engine;
use crate::control::{Action, Control, Input, TargetKind};
use crate::decision::{apply_control, overdue_alerts, Decisions};
use crate::feature::Carried;
use crate::keyed::Stage;
use crate::time::{EventTime, Span};

impl Engine {
    /// Process one input (see [`Engine::process`]); `late`: it arrived behind this watermark.
    /// Returns false for a duplicate (not to be passed on).
    pub fn process_input(
        &mut self,
        input: &Input,
        late: Option<EventTime>,
        carried: Option<&mut Carried>,
        out: &mut Decisions,
    ) -> bool {
        self.late_now = late;
        let fresh = match input {
            Input::Event(ev) => self.process_inner(ev, carried, out),
            Input::Control(c) => self.control(c, out),
        };
        self.late_now = None;
        fresh
    }

    /// Stream time reached watermark `wm` (every input before it was processed): report each
    /// command whose acknowledgement deadline is before it. Called by whatever holds the
    /// engine's order (the replay pipeline, a shard task) after each release, and with the
    /// end-of-input watermark (just past the newest input) at the end.
    pub fn advance(&mut self, wm: EventTime, out: &mut Decisions) {
        if self.cfg.ack_timeout == Span::ZERO || self.locks.is_empty() {
            return;
        }
        let before = out.alerts.len();
        let timeout = self.cfg.ack_timeout;
        overdue_alerts(
            &mut self.locks,
            wm.saturating_sub(Span::ms(1)),
            timeout,
            out,
        );
        let n = (out.alerts.len() - before) as u64;
        self.stats.control.overdue += n;
        self.stats.alerts_by_severity[crate::rules::Severity::High as usize] += n;
    }

    /// Does this engine hold the locks `c` is about?
    fn owns(&self, c: &Control) -> bool {
        let holds = |k: TargetKind| match k {
            TargetKind::Card => self.own.has(Stage::Card),
            TargetKind::Terminal => self.own.has(Stage::Terminal),
        };
        match &c.action {
            Action::Lock { target, .. }
            | Action::Unlock { target, .. }
            | Action::Extend { target, .. } => holds(target.kind),
            Action::Ack { .. } => self.own.has(Stage::Card) || self.own.has(Stage::Terminal),
        }
    }

    fn control(&mut self, c: &Control, out: &mut Decisions) -> bool {
        if self.own.has(Stage::Id) && !self.books.first_control(&c.id, c.ts) {
            self.stats.duplicates += 1;
            return false;
        }
        if self.owns(c) {
            // At the record's own time, late or not: "release this card at 10:10" means the
            // lock in force at 10:10, even if the record reaches the engine after the stream
            // has moved on (and the lock would have expired by stream time).
            let now = c.ts;
            let before = out.alerts.len();
            let ack_timeout = self.cfg.ack_timeout;
            match apply_control(c, &mut self.locks, now, ack_timeout, out) {
                Ok(true) => self.stats.control.count(c, &out.commands),
                Ok(false) => self.stats.duplicates += 1,
                // With scale-out an acknowledgement goes to every shard holding locks; only
                // the one that sent the command knows it.
                Err(r) if self.own.is_all() || r.reason_code != "unknown_command" => {
                    self.stats.control.rejected += 1;
                    out.rejects.push(r);
                }
                Err(_) => {}
            }
            let n = (out.alerts.len() - before) as u64;
            self.stats.alerts_by_severity[crate::rules::Severity::High as usize] += n;
        }
        self.tick(c.ts);
        true
    }
}
