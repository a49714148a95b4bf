//! RTP port pool: even ports from the configured range, handed out round-robin so a port
//! just released is reused last (late packets of an old call do not reach a new one).

use std::collections::VecDeque;

/// Free RTP ports (even; RTCP is the port + 1).
#[derive(Debug)]
pub struct PortPool {
    free: VecDeque<u16>,
}

impl PortPool {
    /// All even ports `p` with `min <= p` and `p + 1 <= max`.
    pub fn new(min: u16, max: u16) -> Self {
        let start = min + (min % 2);
        let free = (start..max).step_by(2).collect();
        PortPool { free }
    }

    /// Takes the least recently used free port.
    pub fn allocate(&mut self) -> Option<u16> {
        self.free.pop_front()
    }

    /// Gives a port back; it goes to the end of the line.
    pub fn release(&mut self, port: u16) {
        debug_assert!(!self.free.contains(&port), "port {port} released twice");
        self.free.push_back(port);
    }

    /// Free ports left.
    pub fn available(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_even_ports_with_room_for_rtcp() {
        let mut p = PortPool::new(20001, 20007);
        assert_eq!(p.allocate(), Some(20002));
        assert_eq!(p.allocate(), Some(20004));
        assert_eq!(p.allocate(), Some(20006));
        assert_eq!(p.allocate(), None, "20008 would need RTCP on 20009 > max");
    }

    #[test]
    fn released_ports_are_reused_last() {
        let mut p = PortPool::new(20000, 20005);
        let a = p.allocate().unwrap();
        p.release(a);
        assert_eq!(p.allocate(), Some(20002));
        assert_eq!(p.allocate(), Some(20004), "20004 + 1 = 20005 still fits");
        assert_eq!(p.allocate(), Some(20000), "the released port comes last");
        assert_eq!(p.available(), 0);
    }
}
