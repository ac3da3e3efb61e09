//! One batch of packets being built: per packet its header (GRE, UDP +
//! VXLAN, or GRE + ERSPAN; [`Encapsulation`]) and where
//! its frame bytes are (the capture ring, or the batch's own arena for frames
//! the agent built), and the iovec lists and `mmsghdr`s `sendmmsg` reads.
//! Everything is allocated once; nothing is per packet.

use std::time::Duration;

use bpc_wire::encap::MAX_HEADER_LEN;
use bpc_wire::{Direction, Encapsulation, FrameInfo, Retagged};

/// Messages per `sendmmsg` call.
pub const BATCH: usize = 64;
/// Room for frames the agent builds itself (segments, re-tagged frames):
/// enough for a batch of full-size segments before a flush is forced.
const ARENA_SIZE: usize = 256 * 1024;

/// Where a message's frame bytes are.
#[derive(Clone, Copy)]
pub(crate) struct Slot {
    header: [u8; MAX_HEADER_LEN],
    header_len: usize,
    /// First part of the frame (all of it unless a VLAN tag is put back).
    frame: *const u8,
    frame_len: usize,
    /// A VLAN tag inserted after the first 12 frame bytes.
    tag: Option<[u8; 4]>,
    /// When the kernel captured the frame, since the Unix epoch.
    captured: Duration,
}

impl Slot {
    /// The header before the frame (GRE, UDP + VXLAN, GRE + ERSPAN).
    pub fn header(&self) -> &[u8] {
        &self.header[..self.header_len]
    }

    /// The frame as queued (without the tag).
    ///
    /// # Safety
    /// Only until the batch is cleared: the pointer is into the capture ring
    /// or the arena, which the caller of [`Batch::push_borrowed`] keeps valid.
    pub unsafe fn frame(&self) -> &[u8] {
        // SAFETY: frame points to frame_len bytes, valid per the contract above.
        unsafe { std::slice::from_raw_parts(self.frame, self.frame_len) }
    }

    /// `frame` (this slot's, from [`Slot::frame`]) with its VLAN tag put back
    /// after the MAC addresses, if it has one.
    pub fn retagged<'a>(&'a self, frame: &'a [u8]) -> Option<Retagged<'a>> {
        self.tag.as_ref().and_then(|tag| Retagged::new(frame, tag))
    }

    /// When the kernel captured the frame, since the Unix epoch.
    pub fn captured(&self) -> Duration {
        self.captured
    }

    /// Bytes after the outer IP header: header, frame and tag.
    pub fn gre_len(&self) -> usize {
        self.header_len + self.frame_len + if self.tag.is_some() { 4 } else { 0 }
    }
}

/// The packets of one batch, GRE headers written as they are queued.
pub(crate) struct Batch {
    encapsulation: Encapsulation,
    own_mac: [u8; 6],
    /// The next GRE sequence number.
    sequence: u32,
    slots: Vec<Slot>,
    used: usize,
    iovecs: Vec<[libc::iovec; 4]>,
    msgs: Vec<libc::mmsghdr>,
    arena: Vec<u8>,
    arena_used: usize,
}

impl Batch {
    pub fn new(encapsulation: Encapsulation, own_mac: [u8; 6]) -> Batch {
        let empty_slot = Slot {
            header: [0; MAX_HEADER_LEN],
            header_len: 0,
            frame: std::ptr::null(),
            frame_len: 0,
            tag: None,
            captured: Duration::ZERO,
        };
        let empty_iov = libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 };
        Batch {
            encapsulation,
            own_mac,
            sequence: 0,
            slots: vec![empty_slot; BATCH],
            used: 0,
            iovecs: vec![[empty_iov; 4]; BATCH],
            // SAFETY: mmsghdr is plain data; zero is valid (filled before each send).
            msgs: vec![unsafe { std::mem::zeroed() }; BATCH],
            arena: vec![0; ARENA_SIZE],
            arena_used: 0,
        }
    }

    /// The header length of the encapsulation.
    pub fn header_len(&self) -> usize {
        self.encapsulation.header_len()
    }

    /// Packets queued.
    pub fn len(&self) -> usize {
        self.used
    }

    pub fn is_full(&self) -> bool {
        self.used == BATCH
    }

    /// Whether a copy of `len` more bytes fits the arena.
    pub fn has_room_for_copy(&self, len: usize) -> bool {
        !self.is_full() && self.arena_used + len.min(ARENA_SIZE) <= ARENA_SIZE
    }

    /// The packets queued.
    pub fn slots(&self) -> &[Slot] {
        &self.slots[..self.used]
    }

    /// Queues a frame captured at `captured` without copying it; `tag` (if
    /// any) is put back after the MAC addresses. The batch must not be full.
    ///
    /// # Safety
    /// `frame` must stay valid and unchanged until [`Batch::clear`].
    pub unsafe fn push_borrowed(&mut self, frame: &[u8], tag: Option<[u8; 4]>, captured: Duration) {
        self.push_slot(frame.as_ptr(), frame.len(), tag.filter(|_| frame.len() >= 12), frame, captured);
    }

    /// Queues a copy of `frame` (cut to the arena); there must be room for it
    /// ([`Batch::has_room_for_copy`]).
    pub fn push_copied(&mut self, frame: &[u8], captured: Duration) {
        let frame = &frame[..frame.len().min(ARENA_SIZE)];
        let start = self.arena_used;
        self.arena[start..start + frame.len()].copy_from_slice(frame);
        self.arena_used += frame.len();
        let ptr = self.arena[start..].as_ptr();
        self.push_slot(ptr, frame.len(), None, frame, captured);
    }

    fn push_slot(
        &mut self,
        frame: *const u8,
        frame_len: usize,
        tag: Option<[u8; 4]>,
        first: &[u8],
        captured: Duration,
    ) {
        let slot = &mut self.slots[self.used];
        let direction = if self.encapsulation.uses_direction() {
            Direction::of_frame(first, &self.own_mac)
        } else {
            Direction::Unknown
        };
        let info = FrameInfo {
            head: first,
            len: frame_len + if tag.is_some() { 4 } else { 0 },
            sequence: self.sequence,
            direction,
            vlan: tag,
            captured,
        };
        // The slot holds MAX_HEADER_LEN, the longest header; a frame of up to
        // 65,535 bytes fits the UDP length (the capture keeps 262,144 bytes,
        // but the pipeline cuts every frame to what one IP packet carries).
        slot.header_len = self
            .encapsulation
            .write_header(&mut slot.header, &info)
            .expect("the header fits MAX_HEADER_LEN and the frame one IP packet");
        slot.frame = frame;
        slot.frame_len = frame_len;
        slot.tag = tag;
        slot.captured = captured;
        self.sequence = self.sequence.wrapping_add(1);
        self.used += 1;
    }

    /// Points every queued packet's iovec list at its header, frame and tag.
    pub fn fill_iovecs(&mut self) {
        let iovec = |part: &[u8]| libc::iovec { iov_base: part.as_ptr() as *mut _, iov_len: part.len() };
        for (slot, iov) in self.slots[..self.used].iter().zip(&mut self.iovecs) {
            // SAFETY: the batch is not cleared while the messages are in use.
            let frame = unsafe { slot.frame() };
            iov[0] = iovec(slot.header());
            match slot.retagged(frame) {
                None => iov[1] = iovec(frame),
                Some(tagged) => {
                    for (i, part) in tagged.parts().into_iter().enumerate() {
                        iov[1 + i] = iovec(part);
                    }
                }
            }
        }
    }

    /// The `sendmmsg` messages of the queued packets, addressed to `addr`
    /// (after [`Batch::fill_iovecs`]). `addr` must outlive the send.
    pub fn messages_to(
        &mut self,
        addr: &libc::sockaddr_storage,
        addr_len: libc::socklen_t,
    ) -> &mut [libc::mmsghdr] {
        for i in 0..self.used {
            let m = &mut self.msgs[i];
            m.msg_hdr.msg_name = (addr as *const libc::sockaddr_storage) as *mut _;
            m.msg_hdr.msg_namelen = addr_len;
            m.msg_hdr.msg_iov = self.iovecs[i].as_mut_ptr();
            m.msg_hdr.msg_iovlen = if self.slots[i].tag.is_some() { 4 } else { 2 };
            m.msg_hdr.msg_control = std::ptr::null_mut();
            m.msg_hdr.msg_controllen = 0;
            m.msg_hdr.msg_flags = 0;
            m.msg_len = 0;
        }
        &mut self.msgs[..self.used]
    }

    /// Forgets the queued packets (sent or dropped).
    pub fn clear(&mut self) {
        self.used = 0;
        self.arena_used = 0;
    }
}
