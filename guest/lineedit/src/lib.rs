//! Line editor for forkvm's serial console shell (`no_std` + `alloc`).
//!
//! Turns raw input bytes from a VT100/xterm terminal into finished lines. It
//! supports cursor movement, kill commands and a bounded history. All terminal
//! output goes through a caller-supplied sink. Every output byte costs a VM
//! exit, so the editor sends as little as it can: a plain append echoes just
//! the typed byte, and mid-line edits repaint only the tail of the line.
//!
//! Limits: the prompt should be a single line without control characters, and
//! lines are assumed to fit on one terminal row. Cursor moves are relative, so
//! a line that wraps will be redrawn incorrectly.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

/// Longest line the editor accepts, in bytes. Further input rings the bell.
pub const MAX_LINE_LEN: usize = 1024;

const CTRL_A: u8 = 0x01;
const CTRL_C: u8 = 0x03;
const CTRL_D: u8 = 0x04;
const CTRL_E: u8 = 0x05;
const BELL: u8 = 0x07;
const BACKSPACE: u8 = 0x08;
const CTRL_K: u8 = 0x0b;
const CTRL_L: u8 = 0x0c;
const CTRL_U: u8 = 0x15;
const CTRL_W: u8 = 0x17;
const ESC: u8 = 0x1b;
const DEL: u8 = 0x7f;

const CLEAR_TO_EOL: &[u8] = b"\x1b[K";
const CLEAR_SCREEN: &[u8] = b"\x1b[H\x1b[2J";

/// What a fed byte completed.
#[derive(Debug, PartialEq, Eq)]
pub enum LineEvent {
    /// Nothing complete yet.
    Pending,
    /// Enter was pressed: the finished line (without the newline). Added to history if non-empty and different from the previous entry.
    Line(String),
    /// Ctrl-C: the line was abandoned (editor prints "^C\r\n" and resets).
    Interrupt,
    /// Ctrl-D on an empty line.
    EndOfInput,
}

/// Where we are inside a multi-byte escape sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EscapeState {
    /// Not inside an escape sequence.
    Ground,
    /// Saw ESC.
    Escape,
    /// Saw ESC [. Only the first numeric parameter matters for the keys we
    /// know (e.g. the 3 in ESC [ 3 ~), so later parameters are skipped.
    Csi {
        first_param: u16,
        first_param_done: bool,
    },
    /// Saw ESC O (keys sent in "application cursor" mode).
    Ss3,
}

/// An editing operation decoded from one or more input bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Insert(u8),
    Enter,
    Backspace,
    /// Ctrl-D: delete under the cursor, or end of input on an empty line.
    DeleteOrEof,
    Delete,
    Home,
    End,
    Left,
    Right,
    HistoryPrev,
    HistoryNext,
    KillToEnd,
    KillToStart,
    DeleteWord,
    ClearScreen,
    Interrupt,
}

/// An editable line with history, driven one input byte at a time.
pub struct LineEditor {
    prompt: String,
    /// The line being edited. It holds only printable ASCII, so every byte
    /// is one terminal column.
    line: Vec<u8>,
    /// Cursor position in `line`. Always `<= line.len()`.
    cursor: usize,
    history: VecDeque<String>,
    history_capacity: usize,
    /// Index into `history` of the entry shown, or `None` when the user is
    /// editing their own line rather than a recalled one.
    history_pos: Option<usize>,
    /// The user's own line, stashed while they browse history.
    stashed_line: Vec<u8>,
    escape: EscapeState,
    /// The previous byte was `\r`, so a following `\n` belongs to the same
    /// Enter press. This survives `start()` because the shell usually starts
    /// the next prompt before the `\n` arrives.
    after_cr: bool,
}

impl LineEditor {
    /// Create an editor that remembers up to `history_capacity` lines
    /// (0 disables history).
    #[must_use]
    pub fn new(history_capacity: usize) -> Self {
        Self {
            prompt: String::new(),
            line: Vec::new(),
            cursor: 0,
            // No pre-allocation: a huge capacity must not allocate up front.
            history: VecDeque::new(),
            history_capacity,
            history_pos: None,
            stashed_line: Vec::new(),
            escape: EscapeState::Ground,
            after_cr: false,
        }
    }

    /// Start a new line: remember the prompt (needed for redraws) and write it to `out`.
    pub fn start(&mut self, prompt: &str, out: &mut dyn FnMut(&[u8])) {
        self.prompt.clear();
        self.prompt.push_str(prompt);
        self.reset_line();
        self.escape = EscapeState::Ground;
        out(self.prompt.as_bytes());
    }

    /// Feed one input byte; terminal output (echo, redraw, cursor moves) goes to `out`.
    pub fn feed(&mut self, byte: u8, out: &mut dyn FnMut(&[u8])) -> LineEvent {
        // Terminals send "\r", "\n" or "\r\n" for Enter; the last must not
        // count twice.
        let after_cr = core::mem::replace(&mut self.after_cr, false);
        if after_cr && byte == b'\n' {
            return LineEvent::Pending;
        }
        match self.decode(byte) {
            Some(action) => self.execute(action, out),
            None => LineEvent::Pending,
        }
    }

    /// Advance the escape-sequence parser; returns an action when `byte`
    /// completes a key.
    fn decode(&mut self, byte: u8) -> Option<Action> {
        match self.escape {
            EscapeState::Ground => self.decode_ground(byte),
            EscapeState::Escape => match byte {
                b'[' => {
                    self.escape = EscapeState::Csi {
                        first_param: 0,
                        first_param_done: false,
                    };
                    None
                }
                b'O' => {
                    self.escape = EscapeState::Ss3;
                    None
                }
                // ESC followed by a printable byte is Alt+key: swallow it.
                0x20..=0x7e => {
                    self.escape = EscapeState::Ground;
                    None
                }
                // A lone ESC followed by a control key (e.g. Enter): drop the
                // ESC and handle the key normally.
                _ => {
                    self.escape = EscapeState::Ground;
                    self.decode_ground(byte)
                }
            },
            EscapeState::Csi {
                first_param,
                first_param_done,
            } => match byte {
                b'0'..=b'9' if !first_param_done => {
                    let digit = u16::from(byte - b'0');
                    self.escape = EscapeState::Csi {
                        first_param: first_param.saturating_mul(10).saturating_add(digit),
                        first_param_done,
                    };
                    None
                }
                // Other parameter bytes (';', '?', ...) and intermediate
                // bytes: anything after the first parameter is irrelevant.
                0x20..=0x3f => {
                    self.escape = EscapeState::Csi {
                        first_param,
                        first_param_done: true,
                    };
                    None
                }
                0x40..=0x7e => {
                    self.escape = EscapeState::Ground;
                    csi_action(byte, first_param)
                }
                // Malformed sequence: abandon it so that control keys such
                // as Ctrl-C still work.
                _ => {
                    self.escape = EscapeState::Ground;
                    self.decode_ground(byte)
                }
            },
            EscapeState::Ss3 => {
                self.escape = EscapeState::Ground;
                match byte {
                    0x20..=0x7e => ss3_action(byte),
                    _ => self.decode_ground(byte),
                }
            }
        }
    }

    /// Decode a byte outside any escape sequence.
    fn decode_ground(&mut self, byte: u8) -> Option<Action> {
        match byte {
            0x20..=0x7e => Some(Action::Insert(byte)),
            b'\r' => {
                self.after_cr = true;
                Some(Action::Enter)
            }
            b'\n' => Some(Action::Enter),
            BACKSPACE | DEL => Some(Action::Backspace),
            CTRL_A => Some(Action::Home),
            CTRL_C => Some(Action::Interrupt),
            CTRL_D => Some(Action::DeleteOrEof),
            CTRL_E => Some(Action::End),
            CTRL_K => Some(Action::KillToEnd),
            CTRL_L => Some(Action::ClearScreen),
            CTRL_U => Some(Action::KillToStart),
            CTRL_W => Some(Action::DeleteWord),
            ESC => {
                self.escape = EscapeState::Escape;
                None
            }
            // Unknown control bytes and non-ASCII bytes.
            _ => None,
        }
    }

    fn execute(&mut self, action: Action, out: &mut dyn FnMut(&[u8])) -> LineEvent {
        match action {
            Action::Insert(byte) => self.insert(byte, out),
            Action::Enter => {
                out(b"\r\n");
                let text: String = self.line.iter().copied().map(char::from).collect();
                self.remember(&text);
                self.reset_line();
                return LineEvent::Line(text);
            }
            Action::Interrupt => {
                out(b"^C\r\n");
                self.reset_line();
                return LineEvent::Interrupt;
            }
            Action::DeleteOrEof if self.line.is_empty() => {
                // Leave the cursor on a fresh row, as Enter and Ctrl-C do.
                out(b"\r\n");
                self.reset_line();
                return LineEvent::EndOfInput;
            }
            Action::DeleteOrEof | Action::Delete => self.delete_under_cursor(out),
            Action::Backspace => self.backspace(out),
            Action::Home => {
                cursor_left(self.cursor, out);
                self.cursor = 0;
            }
            Action::End => {
                cursor_right(self.line.len().saturating_sub(self.cursor), out);
                self.cursor = self.line.len();
            }
            Action::Left => {
                if self.cursor > 0 {
                    self.cursor -= 1;
                    // Backspace moves left without erasing, in one byte.
                    out(&[BACKSPACE]);
                }
            }
            Action::Right => {
                // Re-echoing the character under the cursor moves right in
                // one byte.
                if let Some(&byte) = self.line.get(self.cursor) {
                    self.cursor += 1;
                    out(&[byte]);
                }
            }
            Action::HistoryPrev => self.history_prev(out),
            Action::HistoryNext => self.history_next(out),
            Action::KillToEnd => {
                if self.cursor < self.line.len() {
                    self.line.truncate(self.cursor);
                    out(CLEAR_TO_EOL);
                }
            }
            Action::KillToStart => self.delete_before_cursor(0, out),
            Action::DeleteWord => {
                let before = self.line.get(..self.cursor).unwrap_or(&[]);
                // Skip spaces left of the cursor, then the word itself.
                let word_end = before.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
                let word_start = before
                    .get(..word_end)
                    .unwrap_or(&[])
                    .iter()
                    .rposition(|&b| b == b' ')
                    .map_or(0, |i| i + 1);
                self.delete_before_cursor(word_start, out);
            }
            Action::ClearScreen => {
                out(CLEAR_SCREEN);
                out(self.prompt.as_bytes());
                out(&self.line);
                cursor_left(self.line.len().saturating_sub(self.cursor), out);
            }
        }
        LineEvent::Pending
    }

    fn insert(&mut self, byte: u8, out: &mut dyn FnMut(&[u8])) {
        if self.line.len() >= MAX_LINE_LEN {
            out(&[BELL]);
            return;
        }
        let at = self.cursor.min(self.line.len());
        self.line.insert(at, byte);
        self.cursor = at + 1;
        out(&[byte]);
        // Mid-line: the rest of the line shifted right, repaint it. Nothing
        // got shorter, so no clear-to-end-of-line is needed.
        let tail = self.tail();
        if !tail.is_empty() {
            out(tail);
            cursor_left(tail.len(), out);
        }
    }

    fn backspace(&mut self, out: &mut dyn FnMut(&[u8])) {
        if self.cursor == 0 {
            return;
        }
        if self.cursor == self.line.len() {
            // Common case: erase the last character in three bytes.
            self.line.pop();
            self.cursor -= 1;
            out(b"\x08 \x08");
        } else {
            self.delete_before_cursor(self.cursor - 1, out);
        }
    }

    fn delete_under_cursor(&mut self, out: &mut dyn FnMut(&[u8])) {
        if self.cursor < self.line.len() {
            self.line.remove(self.cursor);
            self.repaint_tail(out);
        }
    }

    /// Delete `line[start..cursor]` and move the cursor to `start`.
    fn delete_before_cursor(&mut self, start: usize, out: &mut dyn FnMut(&[u8])) {
        let end = self.cursor.min(self.line.len());
        let start = start.min(end);
        if start == end {
            return;
        }
        self.line.drain(start..end);
        cursor_left(end - start, out);
        self.cursor = start;
        self.repaint_tail(out);
    }

    /// Step back through history, stashing the user's own line on the first
    /// step so it can be restored.
    fn history_prev(&mut self, out: &mut dyn FnMut(&[u8])) {
        let pos = match self.history_pos {
            None if self.history.is_empty() => return,
            None => {
                self.stashed_line = core::mem::take(&mut self.line);
                self.history.len() - 1
            }
            Some(0) => return,
            Some(pos) => pos - 1,
        };
        self.history_pos = Some(pos);
        self.line.clear();
        if let Some(entry) = self.history.get(pos) {
            self.line.extend_from_slice(entry.as_bytes());
        }
        self.cursor = self.line.len();
        self.redraw(out);
    }

    /// Step forward through history; past the newest entry, bring back the
    /// user's own line.
    fn history_next(&mut self, out: &mut dyn FnMut(&[u8])) {
        let Some(pos) = self.history_pos else {
            return;
        };
        let next = pos + 1;
        if let Some(entry) = self.history.get(next) {
            self.history_pos = Some(next);
            self.line.clear();
            self.line.extend_from_slice(entry.as_bytes());
        } else {
            self.history_pos = None;
            self.line = core::mem::take(&mut self.stashed_line);
        }
        self.cursor = self.line.len();
        self.redraw(out);
    }

    /// Add a finished line to history, dropping the oldest entry when full.
    fn remember(&mut self, text: &str) {
        if self.history_capacity == 0
            || text.is_empty()
            || self.history.back().map(String::as_str) == Some(text)
        {
            return;
        }
        while self.history.len() >= self.history_capacity {
            self.history.pop_front();
        }
        self.history.push_back(String::from(text));
    }

    fn reset_line(&mut self) {
        self.line.clear();
        self.cursor = 0;
        self.history_pos = None;
        self.stashed_line.clear();
    }

    /// The part of the line from the cursor to the end.
    fn tail(&self) -> &[u8] {
        self.line.get(self.cursor..).unwrap_or(&[])
    }

    /// Rewrite the line from the cursor onwards after it got shorter, then
    /// put the cursor back.
    fn repaint_tail(&self, out: &mut dyn FnMut(&[u8])) {
        let tail = self.tail();
        out(tail);
        out(CLEAR_TO_EOL);
        cursor_left(tail.len(), out);
    }

    /// Redraw the whole row: prompt, line, erase leftovers, place the cursor.
    fn redraw(&self, out: &mut dyn FnMut(&[u8])) {
        out(b"\r");
        out(self.prompt.as_bytes());
        out(&self.line);
        out(CLEAR_TO_EOL);
        cursor_left(self.tail().len(), out);
    }
}

/// Map the final byte (and first parameter) of an ESC [ sequence to a key.
/// Modifier parameters (e.g. ESC [ 1 ; 5 C for Ctrl-Right) are ignored, so
/// modified arrows act like plain ones.
fn csi_action(final_byte: u8, first_param: u16) -> Option<Action> {
    match (final_byte, first_param) {
        (b'A', _) => Some(Action::HistoryPrev),
        (b'B', _) => Some(Action::HistoryNext),
        (b'C', _) => Some(Action::Right),
        (b'D', _) => Some(Action::Left),
        (b'H', _) => Some(Action::Home),
        (b'F', _) => Some(Action::End),
        // 1/4 are VT220 Home/End, 7/8 the rxvt variants.
        (b'~', 1 | 7) => Some(Action::Home),
        (b'~', 4 | 8) => Some(Action::End),
        (b'~', 3) => Some(Action::Delete),
        _ => None,
    }
}

/// Map the byte after ESC O to a key.
fn ss3_action(byte: u8) -> Option<Action> {
    match byte {
        b'A' => Some(Action::HistoryPrev),
        b'B' => Some(Action::HistoryNext),
        b'C' => Some(Action::Right),
        b'D' => Some(Action::Left),
        b'H' => Some(Action::Home),
        b'F' => Some(Action::End),
        _ => None,
    }
}

fn cursor_left(columns: usize, out: &mut dyn FnMut(&[u8])) {
    write_cursor_move(columns, b'D', out);
}

fn cursor_right(columns: usize, out: &mut dyn FnMut(&[u8])) {
    write_cursor_move(columns, b'C', out);
}

/// Write ESC [ <columns> <direction> as one buffer; nothing for 0 columns
/// (the terminal would treat 0 as 1).
fn write_cursor_move(columns: usize, direction: u8, out: &mut dyn FnMut(&[u8])) {
    if columns == 0 {
        return;
    }
    // ESC [ + up to 20 digits of a u64 + the direction byte.
    let mut buf = [0u8; 23];
    let mut len = 0;
    let mut push = |byte: u8| {
        if let Some(slot) = buf.get_mut(len) {
            *slot = byte;
            len += 1;
        }
    };
    push(ESC);
    push(b'[');
    // Emit digits most significant first. `divisor * 10 <= columns` whenever
    // the loop continues, so it cannot overflow.
    let mut divisor = 1;
    while columns / divisor >= 10 {
        divisor *= 10;
    }
    loop {
        // The remainder is below 10, so the cast cannot truncate.
        push(b'0' + (columns / divisor % 10) as u8);
        if divisor == 1 {
            break;
        }
        divisor /= 10;
    }
    push(direction);
    out(buf.get(..len).unwrap_or(&[]));
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;
    use alloc::vec;

    const PROMPT: &str = "> ";

    /// Editor with `PROMPT` already started.
    fn editor(history_capacity: usize) -> LineEditor {
        let mut ed = LineEditor::new(history_capacity);
        ed.start(PROMPT, &mut |_| {});
        ed
    }

    /// Feed `input`, returning the non-`Pending` events and all output.
    fn feed_all(ed: &mut LineEditor, input: &[u8]) -> (Vec<LineEvent>, Vec<u8>) {
        let mut output = Vec::new();
        let mut events = Vec::new();
        for &byte in input {
            let event = ed.feed(byte, &mut |bytes| output.extend_from_slice(bytes));
            if event != LineEvent::Pending {
                events.push(event);
            }
        }
        (events, output)
    }

    /// Feed `input` and return only the output.
    fn output_of(ed: &mut LineEditor, input: &[u8]) -> Vec<u8> {
        feed_all(ed, input).1
    }

    /// Feed `input` followed by Enter and return the finished line.
    fn line_after(ed: &mut LineEditor, input: &[u8]) -> String {
        let (mut events, _) = feed_all(ed, input);
        events.extend(feed_all(ed, b"\r").0);
        match events.as_slice() {
            [LineEvent::Line(text)] => text.clone(),
            other => panic!("expected one line, got {other:?}"),
        }
    }

    fn line(text: &str) -> LineEvent {
        LineEvent::Line(text.to_string())
    }

    fn current(ed: &LineEditor) -> String {
        ed.line.iter().copied().map(char::from).collect()
    }

    // ---- Basic input ----

    #[test]
    fn start_writes_prompt() {
        let mut ed = LineEditor::new(4);
        let mut output = Vec::new();
        ed.start("guest$ ", &mut |bytes| output.extend_from_slice(bytes));
        assert_eq!(output, b"guest$ ");
    }

    #[test]
    fn typed_line_is_returned_on_enter() {
        let mut ed = editor(4);
        let (events, output) = feed_all(&mut ed, b"hello world\r");
        assert_eq!(events, vec![line("hello world")]);
        assert_eq!(output, b"hello world\r\n");
    }

    #[test]
    fn plain_append_echoes_only_the_byte() {
        let mut ed = editor(4);
        assert_eq!(output_of(&mut ed, b"ab"), b"ab");
        assert_eq!(output_of(&mut ed, b"c"), b"c");
    }

    #[test]
    fn feed_returns_pending_until_enter() {
        let mut ed = editor(4);
        assert_eq!(ed.feed(b'x', &mut |_| {}), LineEvent::Pending);
        assert_eq!(ed.feed(b'\n', &mut |_| {}), line("x"));
    }

    #[test]
    fn empty_enter_gives_empty_line() {
        let mut ed = editor(4);
        assert_eq!(feed_all(&mut ed, b"\r").0, vec![line("")]);
    }

    #[test]
    fn unknown_control_and_high_bytes_are_ignored() {
        let mut ed = editor(4);
        let (events, output) = feed_all(&mut ed, b"a\t\x00\x02\x80\xff\xc3\xa9b");
        assert!(events.is_empty());
        assert_eq!(output, b"ab");
        assert_eq!(current(&ed), "ab");
    }

    #[test]
    fn line_length_is_capped_with_bell() {
        let mut ed = editor(4);
        let full = vec![b'x'; MAX_LINE_LEN];
        assert_eq!(output_of(&mut ed, &full), full);
        assert_eq!(output_of(&mut ed, b"yz"), [BELL, BELL]);
        // Editing still works at the limit.
        assert_eq!(output_of(&mut ed, b"\x7f"), b"\x08 \x08");
        let text = line_after(&mut ed, b"q");
        assert_eq!(text.len(), MAX_LINE_LEN);
        assert!(text.ends_with("xq"));
    }

    #[test]
    fn mid_line_insert_repaints_tail() {
        let mut ed = editor(4);
        feed_all(&mut ed, b"ac\x1b[D");
        assert_eq!(output_of(&mut ed, b"b"), b"bc\x1b[1D");
        assert_eq!(line_after(&mut ed, b""), "abc");
    }

    // ---- Enter handling ----

    #[test]
    fn crlf_is_one_enter() {
        let mut ed = editor(4);
        let (events, output) = feed_all(&mut ed, b"ls\r\npwd\r\n");
        assert_eq!(events, vec![line("ls"), line("pwd")]);
        assert_eq!(output, b"ls\r\npwd\r\n");
    }

    #[test]
    fn lone_cr_and_lone_lf_are_enters() {
        let mut ed = editor(4);
        assert_eq!(feed_all(&mut ed, b"a\rb\r").0, vec![line("a"), line("b")]);
        assert_eq!(feed_all(&mut ed, b"c\nd\n").0, vec![line("c"), line("d")]);
    }

    #[test]
    fn repeated_enters_are_not_merged() {
        // Only a \n right after a \r is swallowed, so each input is two Enters.
        for input in [&b"\r\r"[..], b"\n\n", b"\n\r", b"\r\n\r\n"] {
            let mut ed = editor(4);
            let events = feed_all(&mut ed, input).0;
            assert_eq!(events, vec![line(""), line("")], "input = {input:?}");
        }
    }

    #[test]
    fn lf_after_cr_is_swallowed_across_start() {
        // The shell restarts the prompt between the \r and the \n.
        let mut ed = editor(4);
        assert_eq!(feed_all(&mut ed, b"ls\r").0, vec![line("ls")]);
        ed.start(PROMPT, &mut |_| {});
        let (events, output) = feed_all(&mut ed, b"\nx");
        assert!(events.is_empty());
        assert_eq!(output, b"x");
    }

    #[test]
    fn lf_not_directly_after_cr_is_an_enter() {
        let mut ed = editor(4);
        assert_eq!(feed_all(&mut ed, b"\ra\n").0, vec![line(""), line("a")]);
    }

    // ---- Deletion ----

    #[test]
    fn backspace_deletes_before_cursor() {
        let mut ed = editor(4);
        assert_eq!(line_after(&mut ed, b"abc\x7f\x08d"), "ad");
    }

    #[test]
    fn backspace_at_end_is_three_bytes() {
        let mut ed = editor(4);
        feed_all(&mut ed, b"ab");
        assert_eq!(output_of(&mut ed, b"\x7f"), b"\x08 \x08");
    }

    #[test]
    fn backspace_on_empty_line_does_nothing() {
        let mut ed = editor(4);
        let (events, output) = feed_all(&mut ed, b"\x7f\x08");
        assert!(events.is_empty());
        assert!(output.is_empty());
    }

    #[test]
    fn backspace_mid_line_repaints_tail() {
        let mut ed = editor(4);
        feed_all(&mut ed, b"abcd\x1b[D\x1b[D");
        assert_eq!(output_of(&mut ed, b"\x7f"), b"\x1b[1Dcd\x1b[K\x1b[2D");
        assert_eq!(line_after(&mut ed, b""), "acd");
    }

    #[test]
    fn ctrl_d_deletes_under_cursor() {
        let mut ed = editor(4);
        feed_all(&mut ed, b"abc\x01");
        let (events, output) = feed_all(&mut ed, b"\x04");
        assert!(events.is_empty());
        assert_eq!(output, b"bc\x1b[K\x1b[2D");
        assert_eq!(line_after(&mut ed, b""), "bc");
    }

    #[test]
    fn ctrl_d_at_end_of_non_empty_line_does_nothing() {
        let mut ed = editor(4);
        feed_all(&mut ed, b"abc");
        let (events, output) = feed_all(&mut ed, b"\x04");
        assert!(events.is_empty());
        assert!(output.is_empty());
        assert_eq!(current(&ed), "abc");
    }

    #[test]
    fn ctrl_d_on_empty_line_is_end_of_input() {
        let mut ed = editor(4);
        assert_eq!(feed_all(&mut ed, b"\x04").0, vec![LineEvent::EndOfInput]);
        // Also after the line was emptied by editing.
        assert_eq!(
            feed_all(&mut ed, b"ab\x15\x04").0,
            vec![LineEvent::EndOfInput]
        );
    }

    #[test]
    fn delete_key_deletes_under_cursor() {
        let mut ed = editor(4);
        assert_eq!(line_after(&mut ed, b"abc\x1b[D\x1b[D\x1b[3~"), "ac");
        // Delete on an empty line is not end of input.
        assert!(feed_all(&mut ed, b"\x1b[3~").0.is_empty());
    }

    #[test]
    fn ctrl_k_kills_to_end() {
        let mut ed = editor(4);
        feed_all(&mut ed, b"hello world\x01\x1b[C\x1b[C");
        assert_eq!(output_of(&mut ed, b"\x0b"), b"\x1b[K");
        assert_eq!(line_after(&mut ed, b""), "he");
    }

    #[test]
    fn ctrl_k_at_end_outputs_nothing() {
        let mut ed = editor(4);
        feed_all(&mut ed, b"abc");
        assert!(output_of(&mut ed, b"\x0b").is_empty());
    }

    #[test]
    fn ctrl_u_kills_to_start() {
        let mut ed = editor(4);
        feed_all(&mut ed, b"hello world\x1b[D\x1b[D");
        assert_eq!(output_of(&mut ed, b"\x15"), b"\x1b[9Dld\x1b[K\x1b[2D");
        assert_eq!(line_after(&mut ed, b""), "ld");
    }

    #[test]
    fn ctrl_w_deletes_previous_word() {
        let mut ed = editor(4);
        assert_eq!(line_after(&mut ed, b"echo hello world\x17"), "echo hello ");
        assert_eq!(line_after(&mut ed, b"echo hello  \x17"), "echo ");
        assert_eq!(line_after(&mut ed, b"word\x17"), "");
        assert_eq!(line_after(&mut ed, b"   \x17"), "");
        assert_eq!(line_after(&mut ed, b"\x17"), "");
    }

    #[test]
    fn ctrl_w_mid_line_keeps_tail() {
        let mut ed = editor(4);
        feed_all(
            &mut ed,
            b"one two three\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D",
        );
        assert_eq!(output_of(&mut ed, b"\x17"), b"\x1b[3D three\x1b[K\x1b[6D");
        assert_eq!(line_after(&mut ed, b""), "one  three");
    }

    // ---- Cursor movement ----

    #[test]
    fn left_and_right_move_cursor() {
        let mut ed = editor(4);
        feed_all(&mut ed, b"ac");
        assert_eq!(output_of(&mut ed, b"\x1b[D"), b"\x08");
        assert_eq!(line_after(&mut ed, b"b"), "abc");

        feed_all(&mut ed, b"xz\x1b[D\x1b[D");
        assert_eq!(output_of(&mut ed, b"\x1b[C"), b"x");
        assert_eq!(line_after(&mut ed, b"y"), "xyz");
    }

    #[test]
    fn application_mode_arrows_work() {
        let mut ed = editor(4);
        assert_eq!(line_after(&mut ed, b"ac\x1bODb"), "abc");
        assert_eq!(line_after(&mut ed, b"xz\x1bOD\x1bOD\x1bOCy"), "xyz");
    }

    #[test]
    fn movement_stops_at_line_edges() {
        let mut ed = editor(4);
        feed_all(&mut ed, b"ab");
        assert!(output_of(&mut ed, b"\x1b[C").is_empty());
        feed_all(&mut ed, b"\x1b[D\x1b[D");
        assert!(output_of(&mut ed, b"\x1b[D").is_empty());
        assert!(output_of(&mut ed, b"\x01").is_empty());
        assert_eq!(line_after(&mut ed, b"0"), "0ab");
    }

    #[test]
    fn ctrl_a_and_ctrl_e() {
        let mut ed = editor(4);
        feed_all(&mut ed, b"bc");
        assert_eq!(output_of(&mut ed, b"\x01"), b"\x1b[2D");
        feed_all(&mut ed, b"a");
        assert_eq!(output_of(&mut ed, b"\x05"), b"\x1b[2C");
        assert_eq!(line_after(&mut ed, b"d"), "abcd");
    }

    #[test]
    fn home_key_variants() {
        for home in [&b"\x1b[H"[..], b"\x1b[1~", b"\x1bOH", b"\x1b[7~"] {
            let mut ed = editor(4);
            let input = [&b"bc"[..], home, b"a"].concat();
            assert_eq!(line_after(&mut ed, &input), "abc", "home = {home:?}");
        }
    }

    #[test]
    fn end_key_variants() {
        for end in [&b"\x1b[F"[..], b"\x1b[4~", b"\x1bOF", b"\x1b[8~"] {
            let mut ed = editor(4);
            let input = [&b"ab\x01"[..], end, b"c"].concat();
            assert_eq!(line_after(&mut ed, &input), "abc", "end = {end:?}");
        }
    }

    #[test]
    fn modified_arrows_act_like_plain_arrows() {
        let mut ed = editor(4);
        assert_eq!(line_after(&mut ed, b"ac\x1b[1;5Db"), "abc");
    }

    // ---- Escape sequences ----

    #[test]
    fn unknown_escape_sequences_are_ignored() {
        let mut ed = editor(4);
        let input = b"a\x1b[Z\x1b[2~\x1b[200~\x1b[?25h\x1b[15;2~\x1b[6~\x1bOP\x1b[1;2Pb";
        let (events, output) = feed_all(&mut ed, input);
        assert!(events.is_empty());
        assert_eq!(output, b"ab");
        assert_eq!(current(&ed), "ab");
    }

    #[test]
    fn alt_key_is_swallowed() {
        let mut ed = editor(4);
        assert_eq!(line_after(&mut ed, b"a\x1bxb"), "ab");
    }

    #[test]
    fn escape_followed_by_control_key_runs_the_key() {
        let mut ed = editor(4);
        assert_eq!(feed_all(&mut ed, b"ab\x1b\r").0, vec![line("ab")]);
        assert_eq!(
            feed_all(&mut ed, b"ab\x1b[\x03").0,
            vec![LineEvent::Interrupt]
        );
        assert_eq!(feed_all(&mut ed, b"ab\x1bO\r").0, vec![line("ab")]);
    }

    #[test]
    fn escape_restarts_an_unfinished_sequence() {
        let mut ed = editor(4);
        assert_eq!(line_after(&mut ed, b"ac\x1b[\x1b[Db"), "abc");
    }

    #[test]
    fn huge_csi_parameters_saturate() {
        let mut ed = editor(4);
        let input = [&b"a\x1b["[..], &[b'9'; 100], b"~b"].concat();
        assert_eq!(line_after(&mut ed, &input), "ab");
    }

    #[test]
    fn start_abandons_a_partial_escape_sequence() {
        let mut ed = editor(4);
        feed_all(&mut ed, b"\x1b[");
        ed.start(PROMPT, &mut |_| {});
        assert_eq!(line_after(&mut ed, b"D"), "D");
    }

    // ---- Interrupt and screen ----

    #[test]
    fn ctrl_c_abandons_line() {
        let mut ed = editor(4);
        let (events, output) = feed_all(&mut ed, b"abc\x03");
        assert_eq!(events, vec![LineEvent::Interrupt]);
        assert_eq!(output, b"abc^C\r\n");
        assert_eq!(current(&ed), "");
        // Interrupted lines do not enter history.
        assert!(ed.history.is_empty());
    }

    #[test]
    fn ctrl_l_clears_screen_and_redraws() {
        let mut ed = editor(4);
        feed_all(&mut ed, b"abc\x1b[D");
        assert_eq!(output_of(&mut ed, b"\x0c"), b"\x1b[H\x1b[2J> abc\x1b[1D");
        feed_all(&mut ed, b"\x05");
        assert_eq!(output_of(&mut ed, b"\x0c"), b"\x1b[H\x1b[2J> abc");
    }

    // ---- History ----

    #[test]
    fn history_walks_up_and_down() {
        let mut ed = editor(8);
        for cmd in ["one", "two", "three"] {
            line_after(&mut ed, cmd.as_bytes());
        }
        feed_all(&mut ed, b"\x1b[A");
        assert_eq!(current(&ed), "three");
        feed_all(&mut ed, b"\x1b[A");
        assert_eq!(current(&ed), "two");
        feed_all(&mut ed, b"\x1b[A\x1b[A\x1b[A");
        assert_eq!(current(&ed), "one", "stops at the oldest entry");
        feed_all(&mut ed, b"\x1b[B");
        assert_eq!(current(&ed), "two");
        assert_eq!(line_after(&mut ed, b""), "two");
    }

    #[test]
    fn history_redraw_output() {
        let mut ed = editor(8);
        line_after(&mut ed, b"ls");
        feed_all(&mut ed, b"cat");
        assert_eq!(output_of(&mut ed, b"\x1b[A"), b"\r> ls\x1b[K");
        assert_eq!(output_of(&mut ed, b"\x1b[B"), b"\r> cat\x1b[K");
    }

    #[test]
    fn walking_past_newest_restores_edited_line() {
        let mut ed = editor(8);
        line_after(&mut ed, b"old");
        feed_all(&mut ed, b"draft\x1b[D");
        feed_all(&mut ed, b"\x1b[A");
        assert_eq!(current(&ed), "old");
        feed_all(&mut ed, b"\x1b[B");
        assert_eq!(current(&ed), "draft");
        assert_eq!(ed.cursor, 5, "cursor goes to the end of the restored line");
        // Further Down does nothing.
        assert!(output_of(&mut ed, b"\x1b[B").is_empty());
        assert_eq!(current(&ed), "draft");
    }

    #[test]
    fn recalled_entry_can_be_edited() {
        let mut ed = editor(8);
        line_after(&mut ed, b"echo hi");
        assert_eq!(line_after(&mut ed, b"\x1b[A\x7fo"), "echo ho");
        // The original entry is unchanged.
        let entries: Vec<&str> = ed.history.iter().map(String::as_str).collect();
        assert_eq!(entries, ["echo hi", "echo ho"]);
    }

    #[test]
    fn ss3_arrows_walk_history() {
        let mut ed = editor(8);
        line_after(&mut ed, b"a");
        line_after(&mut ed, b"b");
        assert_eq!(line_after(&mut ed, b"\x1bOA\x1bOA\x1bOB"), "b");
    }

    #[test]
    fn history_skips_empty_and_repeated_lines() {
        let mut ed = editor(8);
        for cmd in ["a", "", "a", "b", "a"] {
            line_after(&mut ed, cmd.as_bytes());
        }
        let entries: Vec<&str> = ed.history.iter().map(String::as_str).collect();
        assert_eq!(entries, ["a", "b", "a"]);
    }

    #[test]
    fn history_drops_oldest_when_full() {
        let mut ed = editor(2);
        for cmd in ["one", "two", "three"] {
            line_after(&mut ed, cmd.as_bytes());
        }
        let entries: Vec<&str> = ed.history.iter().map(String::as_str).collect();
        assert_eq!(entries, ["two", "three"]);
        feed_all(&mut ed, b"\x1b[A\x1b[A\x1b[A");
        assert_eq!(current(&ed), "two");
    }

    #[test]
    fn zero_capacity_disables_history() {
        let mut ed = editor(0);
        line_after(&mut ed, b"one");
        let (events, output) = feed_all(&mut ed, b"x\x1b[A\x1b[B");
        assert!(events.is_empty());
        assert_eq!(output, b"x");
        assert_eq!(current(&ed), "x");
    }

    #[test]
    fn history_navigation_on_empty_history_does_nothing() {
        let mut ed = editor(4);
        feed_all(&mut ed, b"abc");
        assert!(output_of(&mut ed, b"\x1b[A\x1b[B").is_empty());
        assert_eq!(current(&ed), "abc");
    }

    #[test]
    fn new_line_resets_history_position() {
        let mut ed = editor(4);
        line_after(&mut ed, b"a");
        line_after(&mut ed, b"b");
        assert_eq!(line_after(&mut ed, b"\x1b[A\x1b[A"), "a");
        // Navigation starts again from the newest entry.
        assert_eq!(line_after(&mut ed, b"\x1b[A"), "a");
        assert_eq!(line_after(&mut ed, b"\x1b[A\x1b[A"), "b");
    }

    #[test]
    fn huge_history_capacity_does_not_preallocate() {
        let mut ed = editor(usize::MAX);
        assert_eq!(line_after(&mut ed, b"ok"), "ok");
    }

    // ---- Helpers ----

    #[test]
    fn cursor_move_encoding() {
        let encode = |columns: usize| {
            let mut output = Vec::new();
            cursor_left(columns, &mut |bytes| output.extend_from_slice(bytes));
            output
        };
        assert_eq!(encode(0), b"");
        assert_eq!(encode(1), b"\x1b[1D");
        assert_eq!(encode(10), b"\x1b[10D");
        assert_eq!(encode(1024), b"\x1b[1024D");
        assert_eq!(
            encode(usize::MAX),
            format!("\x1b[{}D", usize::MAX).as_bytes()
        );
    }

    // ---- Terminal model ----

    /// A single-row model of a VT100 terminal, enough to check that the
    /// editor's output keeps the screen in sync with its buffer.
    struct Screen {
        row: Vec<u8>,
        col: usize,
        pending: Vec<u8>,
    }

    impl Screen {
        fn new() -> Self {
            Screen {
                row: Vec::new(),
                col: 0,
                pending: Vec::new(),
            }
        }

        fn write(&mut self, bytes: &[u8]) {
            for &byte in bytes {
                self.byte(byte);
            }
        }

        fn byte(&mut self, byte: u8) {
            if !self.pending.is_empty() {
                self.pending.push(byte);
                if (0x40..=0x7e).contains(&byte) && self.pending.len() > 2 {
                    let seq = core::mem::take(&mut self.pending);
                    self.escape(&seq);
                }
                return;
            }
            match byte {
                ESC => self.pending.push(byte),
                b'\r' => self.col = 0,
                b'\n' => self.row.clear(),
                BACKSPACE => self.col = self.col.saturating_sub(1),
                BELL => {}
                0x20..=0x7e => {
                    if self.row.len() <= self.col {
                        self.row.resize(self.col + 1, b' ');
                    }
                    self.row[self.col] = byte;
                    self.col += 1;
                }
                _ => panic!("unexpected output byte {byte:#x}"),
            }
        }

        fn escape(&mut self, seq: &[u8]) {
            let body = &seq[2..seq.len() - 1];
            let count = || -> usize {
                core::str::from_utf8(body)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(1)
            };
            match seq[seq.len() - 1] {
                b'D' => self.col = self.col.saturating_sub(count()),
                b'C' => self.col += count(),
                b'K' => self.row.truncate(self.col),
                b'H' => self.col = 0,
                b'J' => self.row.clear(),
                _ => panic!("unexpected escape sequence {seq:?}"),
            }
        }

        fn text(&self) -> String {
            let text: String = self.row.iter().copied().map(char::from).collect();
            text.trim_end().to_string()
        }
    }

    /// Deterministic xorshift generator so the random test is reproducible.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn screen_matches_buffer_under_random_input() {
        const KEYS: &[&[u8]] = &[
            b"\x7f",
            b"\x08",
            b"\x04",
            b"\x01",
            b"\x05",
            b"\x0b",
            b"\x15",
            b"\x17",
            b"\x0c",
            b"\x1b[A",
            b"\x1b[B",
            b"\x1b[C",
            b"\x1b[D",
            b"\x1b[H",
            b"\x1b[F",
            b"\x1b[1~",
            b"\x1b[4~",
            b"\x1b[3~",
            b"\x1bOA",
            b"\x1bOB",
            b"\x1bOC",
            b"\x1bOD",
            b"\x1bOH",
            b"\x1bOF",
            b"\x1b[Z",
            b"\x1b[1;5C",
            b"\x1bx",
            b"\r",
            b"\n",
            b"\r\n",
            b"\x03",
            b"\t",
            b"\xe9",
            b" ",
        ];
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut ed = LineEditor::new(5);
        let mut screen = Screen::new();
        ed.start(PROMPT, &mut |bytes| screen.write(bytes));
        let mut finished = 0;

        for _ in 0..20_000 {
            let key: Vec<u8> = match rng.below(3) {
                0 => KEYS[rng.below(KEYS.len())].to_vec(),
                1 => vec![b'a' + rng.below(26) as u8],
                // Raw bytes of any value, mostly to exercise the parser.
                _ => vec![rng.below(256) as u8],
            };
            for byte in key {
                let event = ed.feed(byte, &mut |bytes| screen.write(bytes));
                assert!(ed.cursor <= ed.line.len());
                assert!(ed.line.len() <= MAX_LINE_LEN);
                assert!(ed.line.iter().all(|b| (0x20..=0x7e).contains(b)));
                assert!(ed.history.len() <= 5);
                if event == LineEvent::Pending {
                    let expected = format!("{PROMPT}{}", current(&ed));
                    assert_eq!(screen.text(), expected.trim_end());
                    assert_eq!(screen.col, PROMPT.len() + ed.cursor);
                } else {
                    // Every finished line leaves the terminal on a fresh row.
                    assert_eq!((screen.text().as_str(), screen.col), ("", 0));
                    finished += 1;
                    ed.start(PROMPT, &mut |bytes| screen.write(bytes));
                }
            }
        }
        assert!(finished > 100, "random input should finish many lines");
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut ed = LineEditor::new(3);
        ed.start(PROMPT, &mut |_| {});
        for _ in 0..100_000 {
            let byte = rng.below(256) as u8;
            if ed.feed(byte, &mut |_| {}) != LineEvent::Pending {
                ed.start(PROMPT, &mut |_| {});
            }
            assert!(ed.cursor <= ed.line.len());
        }
    }
}
