//! A FIFO that stores its first element inline.
//!
//! A client that waits for each reply before sending the next command (most
//! clients) never has more than one reply pending, so its queue never needs
//! the heap: ten thousand such connections save a small allocation each.
//! Longer pipelines spill into a `VecDeque` whose capacity is then kept.

use std::collections::VecDeque;

/// First-in first-out queue with an inline front slot.
#[derive(Debug)]
pub struct Queue<T> {
    /// The front element; `None` only when the queue is empty.
    front: Option<T>,
    /// The elements behind the front, in order.
    rest: VecDeque<T>,
}

impl<T> Default for Queue<T> {
    /// An empty queue; allocates nothing (`VecDeque::new` does not).
    fn default() -> Self {
        Self {
            front: None,
            rest: VecDeque::new(),
        }
    }
}

impl<T> Queue<T> {
    /// Appends at the back.
    pub fn push_back(&mut self, item: T) {
        if self.front.is_none() {
            self.front = Some(item);
        } else {
            self.rest.push_back(item);
        }
    }

    /// Inserts at the front.
    pub fn push_front(&mut self, item: T) {
        if let Some(old) = self.front.replace(item) {
            self.rest.push_front(old);
        }
    }

    /// Removes the front element.
    pub fn pop_front(&mut self) -> Option<T> {
        let item = self.front.take();
        self.front = self.rest.pop_front();
        item
    }

    /// The front element.
    pub fn front(&self) -> Option<&T> {
        self.front.as_ref()
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.front.is_none()
    }

    /// Elements from front to back.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.front.iter().chain(self.rest.iter())
    }

    /// The element at `index` (0 is the front).
    pub fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        match index {
            0 => self.front.as_mut(),
            _ => self.rest.get_mut(index - 1),
        }
    }

    /// Removes the element at `index` (0 is the front).
    pub fn remove(&mut self, index: usize) -> Option<T> {
        match index {
            0 => self.pop_front(),
            _ => self.rest.remove(index - 1),
        }
    }

    /// Keeps only the elements for which `keep` is true, in order.
    ///
    /// The front joins the deque for the filtering, so this allocates once
    /// on a queue whose deque never held anything.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        if let Some(front) = self.front.take() {
            self.rest.push_front(front);
        }
        self.rest.retain(|item| keep(item));
        self.front = self.rest.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation keeps first-in first-out order across the inline slot.
    #[test]
    fn behaves_as_a_fifo() {
        let mut q = Queue::default();
        assert!(q.is_empty());
        q.push_back(1);
        q.push_back(2);
        q.push_back(3);
        q.push_front(0);
        assert_eq!(q.iter().copied().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert_eq!(q.remove(2), Some(2));
        if let Some(x) = q.get_mut(0) {
            *x = 10;
        }
        q.retain(|x| *x != 1);
        assert_eq!(q.front(), Some(&10));
        assert_eq!(q.pop_front(), Some(10));
        assert_eq!(q.pop_front(), Some(3));
        assert_eq!(q.pop_front(), None);
        assert!(q.is_empty());
    }

    /// Alternating push and pop of one element never allocates the deque.
    #[test]
    fn one_element_needs_no_heap() {
        let mut q = Queue::default();
        for i in 0..1000 {
            q.push_back(i);
            assert_eq!(q.pop_front(), Some(i));
        }
        assert_eq!(q.rest.capacity(), 0);
    }
}
