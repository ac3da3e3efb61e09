//! The fanout group of the capture rings: its mode, the classic BPF
//! program that picks a ring for each frame, and the swap of that program
//! when the steering moves the small frames ([`super::steer`]).

use std::os::fd::OwnedFd;
use std::sync::mpsc;

use super::*;
use crate::error::Result;
use crate::packet_socket::{getsockopt, setsockopt};

/// The fanout program: a frame longer than `split` bytes goes to member 1,
/// the super-frame ring; with `prompt` (the prompt ring's member), a frame
/// of up to [`PROMPT_LARGEST_FRAME`] bytes goes there; the rest to member 0,
/// the frame ring.
///
/// The program sees the frame's length before the kernel pushes the
/// Ethernet header back for the socket: received frames without it, sent
/// ones with it. Comparing with `split - 14` sends every frame of up to
/// `split` bytes that the frame ring must hold whole there, and a sent frame
/// within 14 bytes of the split to the super-frame ring, which holds it too;
/// the same for the prompt ring's slots.
pub(super) fn demux_program(split: usize, prompt: Option<u32>) -> Vec<libc::sock_filter> {
    const LD_LEN: u16 = 0x80; // BPF_LD | BPF_W | BPF_LEN
    const JGT_K: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let below = |len: usize| (len - ETH_HEADER_LEN) as u32;
    let mut program = vec![op(LD_LEN, 0, 0, 0), op(JGT_K, 0, 1, below(split)), op(RET_K, 0, 0, 1)];
    if let Some(member) = prompt {
        program.extend([
            op(JGT_K, 0, 1, below(PROMPT_LARGEST_FRAME)),
            op(RET_K, 0, 0, 0),
            op(RET_K, 0, 0, member),
        ]);
    } else {
        program.push(op(RET_K, 0, 0, 0));
    }
    program
}

/// The fanout group's mode: the program picks the ring, and a frame whose
/// ring is full rolls over to a ring with room instead of being dropped
/// (`PACKET_FANOUT_FLAG_ROLLOVER`). Why: a burst from idle fills the small
/// prompt ring before the agent has seen the rate and moved the frames to
/// the blocks (`tests/stream.rs`: 2,000 frames sent at once lost frames
/// without it); the frame ring takes the rest. Under overload the rings share their
/// room the same way: a frame is dropped only when every ring is full (a
/// frame rolled into a ring whose blocks or slots are smaller arrives cut
/// and is counted in `truncated`).
pub(super) const GROUP_MODE: u32 = libc::PACKET_FANOUT_CBPF | libc::PACKET_FANOUT_FLAG_ROLLOVER;

/// Makes `rings` one fanout group, members in their order, whose classic BPF
/// program is `program` ([`demux_program`]).
pub(super) fn join_fanout(rings: &[Ring], program: &[libc::sock_filter]) -> Result<()> {
    // The frame ring joins first: member 0. A group id the kernel picks
    // cannot collide with another capture in the pod (tcpdump, a second agent).
    let create = ((GROUP_MODE | libc::PACKET_FANOUT_FLAG_UNIQUEID) << 16) as libc::c_int;
    setsockopt(
        &rings[0].fd,
        libc::SOL_PACKET,
        libc::PACKET_FANOUT,
        &create,
        "create the capture's fanout group",
    )?;
    rings[1..].iter().try_for_each(|ring| join_group(&rings[0], ring))?;
    set_fanout_program(&rings[0].fd, program)
}

/// Makes `ring` a member of the fanout group `first` created.
pub(super) fn join_group(first: &Ring, ring: &Ring) -> Result<()> {
    let group: libc::c_int =
        getsockopt(&first.fd, libc::SOL_PACKET, libc::PACKET_FANOUT, "read the capture's fanout group")?;
    let join = ((GROUP_MODE << 16) | (group as u32 & 0xffff)) as libc::c_int;
    setsockopt(&ring.fd, libc::SOL_PACKET, libc::PACKET_FANOUT, &join, "join the capture's fanout group")
}

/// Replaces the fanout group's program through one of its members
/// (atomically: each frame meets the old program or the new one). Returns
/// only after an RCU grace period, milliseconds: see [`ProgramSwapper`].
pub(super) fn set_fanout_program(member: &OwnedFd, program: &[libc::sock_filter]) -> Result<()> {
    let program = libc::sock_fprog { len: program.len() as u16, filter: program.as_ptr().cast_mut() };
    setsockopt(member, libc::SOL_PACKET, libc::PACKET_FANOUT_DATA, &program, "set the fanout program")
}

/// Swaps the fanout program on a thread of its own. The kernel puts the new
/// program in place at once but returns from the call only after an RCU
/// grace period, to free the old one: milliseconds, during which a capture
/// thread making the call drained nothing (`scripts/bench.sh` saw the p99
/// of its paced latency rise from about 1 ms to 5-12 ms at 50-100 kpps, the
/// frames held while the rate moved them to the blocks).
#[derive(Debug)]
pub(super) struct ProgramSwapper {
    programs: mpsc::Sender<Vec<libc::sock_filter>>,
}

impl ProgramSwapper {
    /// Starts the thread, with its own descriptor of the group's `member`.
    pub(super) fn spawn(member: &OwnedFd) -> std::io::Result<ProgramSwapper> {
        let fd = member.try_clone()?;
        let (programs, next) = mpsc::channel::<Vec<libc::sock_filter>>();
        std::thread::Builder::new().name("bpc-steer".into()).spawn(move || {
            while let Ok(mut program) = next.recv() {
                // Only the latest program matters.
                while let Ok(newer) = next.try_recv() {
                    program = newer;
                }
                if let Err(e) = set_fanout_program(&fd, &program) {
                    tracing::warn!(error = %e, "cannot change the frames' path");
                }
            }
        })?;
        Ok(ProgramSwapper { programs })
    }

    /// Hands `program` to the thread; never waits.
    pub(super) fn swap(&self, program: Vec<libc::sock_filter>) {
        let _ = self.programs.send(program);
    }
}

/// A filter that takes nothing: the prompt ring's until it is in the group,
/// where the fanout program decides what reaches its own filter.
pub(super) const TAKE_NOTHING: [libc::sock_filter; 1] =
    [libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 0 }];
