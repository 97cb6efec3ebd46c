//! The few PCRE2 calls [`crate::pcre`] makes, behind a safe interface.
//!
//! A binding of our own rather than the `pcre2` crate's: a search here goes straight
//! to `pcre2_jit_match`, the JIT's own entry. `pcre2_match` reaches the same code
//! after argument checks and option dispatch that cost more than a short JIT search
//! of a log line itself, on every line. For a pattern compiled as we compile them
//! (UTF with `PCRE2_MATCH_INVALID_UTF`, no match-time options) the two entries do the
//! same: `pcre2_match` skips the UTF check for such patterns and hands over to the
//! JIT, and its other work concerns options we never pass. The one argument check
//! that matters, the start offset within the subject, is made here.
#![allow(unsafe_code)]

use std::ptr::{self, NonNull};

use pcre2_sys::{
    PCRE2_ERROR_NOMATCH, PCRE2_INFO_CAPTURECOUNT, PCRE2_JIT_COMPLETE, PCRE2_MATCH_INVALID_UTF,
    PCRE2_UCP, PCRE2_UTF, pcre2_code_8, pcre2_code_free_8, pcre2_compile_8,
    pcre2_get_ovector_count_8, pcre2_get_ovector_pointer_8, pcre2_jit_compile_8, pcre2_jit_match_8,
    pcre2_jit_stack_8, pcre2_jit_stack_assign_8, pcre2_jit_stack_create_8, pcre2_jit_stack_free_8,
    pcre2_match_8, pcre2_match_context_8, pcre2_match_context_create_8, pcre2_match_context_free_8,
    pcre2_match_data_8, pcre2_match_data_create_from_pattern_8, pcre2_match_data_free_8,
    pcre2_pattern_info_8,
};

/// An ovector offset of a group that did not take part (`PCRE2_UNSET`).
const UNSET: usize = usize::MAX;

/// A compiled pattern (JIT-compiled when the JIT takes it).
pub(crate) struct Code {
    code: NonNull<pcre2_code_8>,
    jit: bool,
    /// Groups, the whole match included.
    groups: usize,
}

// SAFETY: PCRE2 never writes to a compiled pattern (JIT code included) once it is
// compiled, so threads may match with it at once (pcre2api, "Multithreading"); the
// per-search state lives in `MatchData`, which is not shared.
unsafe impl Send for Code {}
// SAFETY: as above: matching only reads the pattern.
unsafe impl Sync for Code {}

impl Code {
    /// Compiles `pattern` for UTF-8 subjects with Unicode classes (`\d`, `\w` and the
    /// like by Unicode properties), then JIT-compiles it if the JIT is there; `None`
    /// when PCRE2 refuses the pattern.
    pub(crate) fn compile(pattern: &str) -> Option<Code> {
        let options = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF;
        let (mut error_code, mut error_offset) = (0, 0);
        // SAFETY: the pattern pointer and length describe a live `&str`; a null compile
        // context asks for the defaults.
        let code = unsafe {
            pcre2_compile_8(
                pattern.as_ptr(),
                pattern.len(),
                options,
                &mut error_code,
                &mut error_offset,
                ptr::null_mut(),
            )
        };
        let code = NonNull::new(code)?;
        // SAFETY: `code` was just compiled and is not shared yet.
        let jit = unsafe { pcre2_jit_compile_8(code.as_ptr(), PCRE2_JIT_COMPLETE) } == 0;
        let mut count: u32 = 0;
        // SAFETY: CAPTURECOUNT writes one `uint32_t` to the given address.
        let info = unsafe {
            pcre2_pattern_info_8(
                code.as_ptr(),
                PCRE2_INFO_CAPTURECOUNT,
                (&raw mut count).cast(),
            )
        };
        let compiled = Code {
            code,
            jit,
            groups: count as usize + 1,
        };
        (info == 0).then_some(compiled)
    }

    /// Groups, the whole match included.
    pub(crate) fn group_len(&self) -> usize {
        self.groups
    }

    /// Match data for searches with this pattern.
    pub(crate) fn match_data(&self) -> Option<MatchData> {
        MatchData::new(self)
    }

    /// Searches `subject` from byte `start` (earlier bytes still count for
    /// lookbehinds); the groups of a match are then in `data`. `Err` when PCRE2 gave
    /// up (a match or JIT stack limit) or `start` lies beyond the subject.
    pub(crate) fn find(
        &self,
        data: &mut MatchData,
        subject: &[u8],
        start: usize,
    ) -> Result<bool, i32> {
        if start > subject.len() || data.pairs < self.groups {
            return Err(0);
        }
        // An empty slice may have a dangling pointer; PCRE2 is given one it may read.
        static ONE: [u8; 1] = [0];
        let pointer = if subject.is_empty() {
            ONE.as_ptr()
        } else {
            subject.as_ptr()
        };
        // The same signature: `pcre2_match` without the JIT.
        let entry = if self.jit {
            pcre2_jit_match_8
        } else {
            pcre2_match_8
        };
        // SAFETY: the pattern and match data are live; the match data was made for a
        // pattern with as many groups (its ovector has room for all); the subject
        // pointer and length describe readable memory and `start` lies within it; a
        // UTF-8 subject need not be valid, the pattern having MATCH_INVALID_UTF.
        let rc = unsafe {
            entry(
                self.code.as_ptr(),
                pointer,
                subject.len(),
                start,
                0,
                data.data.as_ptr(),
                data.context.as_ptr(),
            )
        };
        data.subject_len = subject.len();
        match rc {
            PCRE2_ERROR_NOMATCH => Ok(false),
            rc if rc > 0 => Ok(true),
            // 0: the ovector was too small, which match data made from the pattern
            // rules out; below: an error.
            rc => Err(rc),
        }
    }
}

impl Drop for Code {
    fn drop(&mut self) {
        // SAFETY: the pattern is ours and no search can be running: it is borrowed
        // by every one.
        unsafe { pcre2_code_free_8(self.code.as_ptr()) }
    }
}

/// The JIT stack may grow to this size: the default 32 KiB runs out on a long line
/// with a lazy loop, and the search would go to a slower engine; the stack is
/// reserved, not used, until a search needs it.
const JIT_STACK_MAX: usize = 1 << 20;

/// What one search at a time needs: the group offsets, a match context and its JIT
/// stack.
pub(crate) struct MatchData {
    data: NonNull<pcre2_match_data_8>,
    context: NonNull<pcre2_match_context_8>,
    stack: Option<NonNull<pcre2_jit_stack_8>>,
    ovector: NonNull<usize>,
    /// Offset pairs in the ovector.
    pairs: usize,
    /// Length of the last subject searched: offsets are checked against it.
    subject_len: usize,
}

// SAFETY: the blocks are owned by this value alone, and PCRE2 keeps no thread-local
// state with them: they may move to another thread between searches.
unsafe impl Send for MatchData {}

impl MatchData {
    fn new(code: &Code) -> Option<MatchData> {
        // SAFETY: a null general context asks for malloc/free.
        let context = NonNull::new(unsafe { pcre2_match_context_create_8(ptr::null_mut()) })?;
        // SAFETY: the pattern is live; the match data gets an ovector for all its groups.
        let data =
            unsafe { pcre2_match_data_create_from_pattern_8(code.code.as_ptr(), ptr::null_mut()) };
        let Some(data) = NonNull::new(data) else {
            // SAFETY: the context is ours and unused.
            unsafe { pcre2_match_context_free_8(context.as_ptr()) };
            return None;
        };
        let mut built = MatchData {
            data,
            context,
            stack: None,
            ovector: NonNull::dangling(),
            pairs: 0,
            subject_len: 0,
        };
        if code.jit {
            // SAFETY: a null general context asks for malloc/free.
            let stack =
                unsafe { pcre2_jit_stack_create_8(32 << 10, JIT_STACK_MAX, ptr::null_mut()) };
            let stack = NonNull::new(stack)?;
            built.stack = Some(stack);
            // SAFETY: context and stack are live and owned by `built`, which frees the
            // stack no earlier than the context that refers to it.
            unsafe { pcre2_jit_stack_assign_8(context.as_ptr(), None, stack.as_ptr().cast()) };
        }
        // SAFETY: the match data is live; its ovector lives as long as it does.
        let ovector = unsafe { pcre2_get_ovector_pointer_8(data.as_ptr()) };
        built.ovector = NonNull::new(ovector)?;
        // SAFETY: as above.
        built.pairs = unsafe { pcre2_get_ovector_count_8(data.as_ptr()) } as usize;
        Some(built)
    }

    /// The span of group `index` in the last match, if it took part.
    pub(crate) fn get(&self, index: usize) -> Option<(usize, usize)> {
        if index >= self.pairs {
            return None;
        }
        // SAFETY: the ovector holds `pairs` pairs of offsets, and `index < pairs`.
        let (start, end) = unsafe {
            let pair = self.ovector.as_ptr().add(2 * index);
            (*pair, *pair.add(1))
        };
        (start != UNSET && start <= end && end <= self.subject_len).then_some((start, end))
    }
}

impl Drop for MatchData {
    fn drop(&mut self) {
        // SAFETY: all three blocks are ours; the context goes before the stack it
        // refers to, and nothing uses either afterwards.
        unsafe {
            pcre2_match_data_free_8(self.data.as_ptr());
            pcre2_match_context_free_8(self.context.as_ptr());
            if let Some(stack) = self.stack {
                pcre2_jit_stack_free_8(stack.as_ptr());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_empty_subjects_offsets_and_invalid_utf8() {
        let code = Code::compile("(a)|(b)").expect("compiles");
        assert_eq!(code.group_len(), 3);
        let mut data = code.match_data().expect("match data");
        assert_eq!(code.find(&mut data, b"xb", 0), Ok(true));
        assert_eq!(
            (data.get(0), data.get(1), data.get(2)),
            (Some((1, 2)), None, Some((1, 2)))
        );
        // Past the ovector: no group.
        assert_eq!(data.get(3), None);
        // From an offset, and an offset beyond the subject refused.
        assert_eq!(code.find(&mut data, b"ab", 1), Ok(true));
        assert_eq!(data.get(0), Some((1, 2)));
        assert!(code.find(&mut data, b"ab", 3).is_err());
        assert_eq!(code.find(&mut data, b"", 0), Ok(false));
        let empty = Code::compile("^$").expect("compiles");
        let mut data = empty.match_data().expect("match data");
        assert_eq!(empty.find(&mut data, b"", 0), Ok(true));
        assert_eq!(data.get(0), Some((0, 0)));
        // Invalid UTF-8 is searched around, not refused.
        assert_eq!(
            code.find(&mut code.match_data().expect("md"), b"\xff\xfeb", 0),
            Ok(true)
        );
        assert!(Code::compile("(").is_none());
    }
}
