//! Linux errno values (x86-64 uses the generic numbering of
//! `include/uapi/asm-generic/errno-base.h` and `errno.h`).
//!
//! Each number is listed once, in [`errnos!`]: it defines the plain `i32`
//! constant (what the kernel negates into a system call's return value), the
//! [`Errno`] constant of the same name (what user programs compare and print)
//! and the symbolic name.

use core::fmt;

/// A Linux error number, as returned negated by a failing system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

macro_rules! errnos {
    ($($name:ident = $value:literal,)*) => {
        $(pub const $name: i32 = $value;)*

        #[allow(missing_docs)]
        impl Errno {
            $(pub const $name: Errno = Errno($value);)*
        }

        /// The Linux symbolic name of `errno` (`"ENOMEM"` for 12), or `None`
        /// for numbers Linux does not define.
        pub const fn name(errno: i32) -> Option<&'static str> {
            match errno {
                $($value => Some(stringify!($name)),)*
                _ => None,
            }
        }
    };
}

// 41 and 58 are unused in Linux (`EWOULDBLOCK` and `EDEADLOCK` are aliases
// of 11 and 35, below).
errnos! {
    EPERM = 1,
    ENOENT = 2,
    ESRCH = 3,
    EINTR = 4,
    EIO = 5,
    ENXIO = 6,
    E2BIG = 7,
    ENOEXEC = 8,
    EBADF = 9,
    ECHILD = 10,
    EAGAIN = 11,
    ENOMEM = 12,
    EACCES = 13,
    EFAULT = 14,
    ENOTBLK = 15,
    EBUSY = 16,
    EEXIST = 17,
    EXDEV = 18,
    ENODEV = 19,
    ENOTDIR = 20,
    EISDIR = 21,
    EINVAL = 22,
    ENFILE = 23,
    EMFILE = 24,
    ENOTTY = 25,
    ETXTBSY = 26,
    EFBIG = 27,
    ENOSPC = 28,
    ESPIPE = 29,
    EROFS = 30,
    EMLINK = 31,
    EPIPE = 32,
    EDOM = 33,
    ERANGE = 34,
    EDEADLK = 35,
    ENAMETOOLONG = 36,
    ENOLCK = 37,
    ENOSYS = 38,
    ENOTEMPTY = 39,
    ELOOP = 40,
    ENOMSG = 42,
    EIDRM = 43,
    ECHRNG = 44,
    EL2NSYNC = 45,
    EL3HLT = 46,
    EL3RST = 47,
    ELNRNG = 48,
    EUNATCH = 49,
    ENOCSI = 50,
    EL2HLT = 51,
    EBADE = 52,
    EBADR = 53,
    EXFULL = 54,
    ENOANO = 55,
    EBADRQC = 56,
    EBADSLT = 57,
    EBFONT = 59,
    ENOSTR = 60,
    ENODATA = 61,
    ETIME = 62,
    ENOSR = 63,
    ENONET = 64,
    ENOPKG = 65,
    EREMOTE = 66,
    ENOLINK = 67,
    EADV = 68,
    ESRMNT = 69,
    ECOMM = 70,
    EPROTO = 71,
    EMULTIHOP = 72,
    EDOTDOT = 73,
    EBADMSG = 74,
    EOVERFLOW = 75,
    ENOTUNIQ = 76,
    EBADFD = 77,
    EREMCHG = 78,
    ELIBACC = 79,
    ELIBBAD = 80,
    ELIBSCN = 81,
    ELIBMAX = 82,
    ELIBEXEC = 83,
    EILSEQ = 84,
    ERESTART = 85,
    ESTRPIPE = 86,
    EUSERS = 87,
    ENOTSOCK = 88,
    EDESTADDRREQ = 89,
    EMSGSIZE = 90,
    EPROTOTYPE = 91,
    ENOPROTOOPT = 92,
    EPROTONOSUPPORT = 93,
    ESOCKTNOSUPPORT = 94,
    EOPNOTSUPP = 95,
    EPFNOSUPPORT = 96,
    EAFNOSUPPORT = 97,
    EADDRINUSE = 98,
    EADDRNOTAVAIL = 99,
    ENETDOWN = 100,
    ENETUNREACH = 101,
    ENETRESET = 102,
    ECONNABORTED = 103,
    ECONNRESET = 104,
    ENOBUFS = 105,
    EISCONN = 106,
    ENOTCONN = 107,
    ESHUTDOWN = 108,
    ETOOMANYREFS = 109,
    ETIMEDOUT = 110,
    ECONNREFUSED = 111,
    EHOSTDOWN = 112,
    EHOSTUNREACH = 113,
    EALREADY = 114,
    EINPROGRESS = 115,
    ESTALE = 116,
    EUCLEAN = 117,
    ENOTNAM = 118,
    ENAVAIL = 119,
    EISNAM = 120,
    EREMOTEIO = 121,
    EDQUOT = 122,
    ENOMEDIUM = 123,
    EMEDIUMTYPE = 124,
    ECANCELED = 125,
    ENOKEY = 126,
    EKEYEXPIRED = 127,
    EKEYREVOKED = 128,
    EKEYREJECTED = 129,
    EOWNERDEAD = 130,
    ENOTRECOVERABLE = 131,
    ERFKILL = 132,
    EHWPOISON = 133,
}

/// Same value as `EAGAIN`.
pub const EWOULDBLOCK: i32 = EAGAIN;
/// Same value as `EDEADLK`.
pub const EDEADLOCK: i32 = EDEADLK;

impl Errno {
    /// Same value as `EAGAIN`.
    pub const EWOULDBLOCK: Errno = Errno(EWOULDBLOCK);
    /// Same value as `EDEADLK`.
    pub const EDEADLOCK: Errno = Errno(EDEADLOCK);

    /// The Linux symbolic name (`"ENOMEM"` for 12), or `None` for numbers
    /// Linux does not define.
    pub const fn name(self) -> Option<&'static str> {
        name(self.0)
    }
}

/// `ENOMEM 12`; `UNKNOWN 41` for a number without a name.
impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name().unwrap_or("UNKNOWN"), self.0)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    #[test]
    fn names_spot_checks() {
        for (n, name) in [
            (1, "EPERM"),
            (2, "ENOENT"),
            (3, "ESRCH"),
            (4, "EINTR"),
            (10, "ECHILD"),
            (11, "EAGAIN"),
            (12, "ENOMEM"),
            (14, "EFAULT"),
            (22, "EINVAL"),
            (38, "ENOSYS"),
            (40, "ELOOP"),
            (42, "ENOMSG"),
            (57, "EBADSLT"),
            (59, "EBFONT"),
            (95, "EOPNOTSUPP"),
            (110, "ETIMEDOUT"),
            (125, "ECANCELED"),
            (133, "EHWPOISON"),
        ] {
            assert_eq!(Errno(n).name(), Some(name), "errno {n}");
        }
        for n in [0, 41, 58, 134, -1, i32::MAX] {
            assert_eq!(Errno(n).name(), None, "errno {n}");
        }
        assert_eq!(Errno::EWOULDBLOCK, Errno::EAGAIN);
        assert_eq!(Errno::EDEADLOCK, Errno::EDEADLK);
    }

    #[test]
    fn every_named_errno_has_its_constant() {
        let named = (1..=133).filter(|&n| Errno(n).name().is_some()).count();
        assert_eq!(named, 131);
        assert_eq!(Errno::EHWPOISON.0, 133);
        assert_eq!(Errno::EMFILE.0, EMFILE);
        assert_eq!(EMFILE, 24);
    }

    #[test]
    fn display_is_name_and_number() {
        assert_eq!(format!("{}", Errno::ENOMEM), "ENOMEM 12");
        assert_eq!(format!("{}", Errno(41)), "UNKNOWN 41");
    }
}
