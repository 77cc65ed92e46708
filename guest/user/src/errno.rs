//! Linux errno values (x86-64 uses the generic numbering of
//! `include/uapi/asm-generic/errno-base.h` and `errno.h`).
//!
//! Programs report failures as `NAME N` (e.g. `ENOMEM 12`) so a message from
//! the guest kernel and one from the host's Linux read the same, and a wrong
//! errno from the guest is obvious.

use core::fmt;

/// A Linux error number, as returned negated by a failing system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

/// Symbolic names of errno 1..=133, indexed by number; 41 and 58 are unused
/// in Linux (`EWOULDBLOCK` and `EDEADLOCK` are aliases of 11 and 35).
const NAMES: [Option<&str>; 134] = [
    None,
    Some("EPERM"),
    Some("ENOENT"),
    Some("ESRCH"),
    Some("EINTR"),
    Some("EIO"),
    Some("ENXIO"),
    Some("E2BIG"),
    Some("ENOEXEC"),
    Some("EBADF"),
    Some("ECHILD"),
    Some("EAGAIN"),
    Some("ENOMEM"),
    Some("EACCES"),
    Some("EFAULT"),
    Some("ENOTBLK"),
    Some("EBUSY"),
    Some("EEXIST"),
    Some("EXDEV"),
    Some("ENODEV"),
    Some("ENOTDIR"),
    Some("EISDIR"),
    Some("EINVAL"),
    Some("ENFILE"),
    Some("EMFILE"),
    Some("ENOTTY"),
    Some("ETXTBSY"),
    Some("EFBIG"),
    Some("ENOSPC"),
    Some("ESPIPE"),
    Some("EROFS"),
    Some("EMLINK"),
    Some("EPIPE"),
    Some("EDOM"),
    Some("ERANGE"),
    Some("EDEADLK"),
    Some("ENAMETOOLONG"),
    Some("ENOLCK"),
    Some("ENOSYS"),
    Some("ENOTEMPTY"),
    Some("ELOOP"),
    None, // 41: unused
    Some("ENOMSG"),
    Some("EIDRM"),
    Some("ECHRNG"),
    Some("EL2NSYNC"),
    Some("EL3HLT"),
    Some("EL3RST"),
    Some("ELNRNG"),
    Some("EUNATCH"),
    Some("ENOCSI"),
    Some("EL2HLT"),
    Some("EBADE"),
    Some("EBADR"),
    Some("EXFULL"),
    Some("ENOANO"),
    Some("EBADRQC"),
    Some("EBADSLT"),
    None, // 58: unused
    Some("EBFONT"),
    Some("ENOSTR"),
    Some("ENODATA"),
    Some("ETIME"),
    Some("ENOSR"),
    Some("ENONET"),
    Some("ENOPKG"),
    Some("EREMOTE"),
    Some("ENOLINK"),
    Some("EADV"),
    Some("ESRMNT"),
    Some("ECOMM"),
    Some("EPROTO"),
    Some("EMULTIHOP"),
    Some("EDOTDOT"),
    Some("EBADMSG"),
    Some("EOVERFLOW"),
    Some("ENOTUNIQ"),
    Some("EBADFD"),
    Some("EREMCHG"),
    Some("ELIBACC"),
    Some("ELIBBAD"),
    Some("ELIBSCN"),
    Some("ELIBMAX"),
    Some("ELIBEXEC"),
    Some("EILSEQ"),
    Some("ERESTART"),
    Some("ESTRPIPE"),
    Some("EUSERS"),
    Some("ENOTSOCK"),
    Some("EDESTADDRREQ"),
    Some("EMSGSIZE"),
    Some("EPROTOTYPE"),
    Some("ENOPROTOOPT"),
    Some("EPROTONOSUPPORT"),
    Some("ESOCKTNOSUPPORT"),
    Some("EOPNOTSUPP"),
    Some("EPFNOSUPPORT"),
    Some("EAFNOSUPPORT"),
    Some("EADDRINUSE"),
    Some("EADDRNOTAVAIL"),
    Some("ENETDOWN"),
    Some("ENETUNREACH"),
    Some("ENETRESET"),
    Some("ECONNABORTED"),
    Some("ECONNRESET"),
    Some("ENOBUFS"),
    Some("EISCONN"),
    Some("ENOTCONN"),
    Some("ESHUTDOWN"),
    Some("ETOOMANYREFS"),
    Some("ETIMEDOUT"),
    Some("ECONNREFUSED"),
    Some("EHOSTDOWN"),
    Some("EHOSTUNREACH"),
    Some("EALREADY"),
    Some("EINPROGRESS"),
    Some("ESTALE"),
    Some("EUCLEAN"),
    Some("ENOTNAM"),
    Some("ENAVAIL"),
    Some("EISNAM"),
    Some("EREMOTEIO"),
    Some("EDQUOT"),
    Some("ENOMEDIUM"),
    Some("EMEDIUMTYPE"),
    Some("ECANCELED"),
    Some("ENOKEY"),
    Some("EKEYEXPIRED"),
    Some("EKEYREVOKED"),
    Some("EKEYREJECTED"),
    Some("EOWNERDEAD"),
    Some("ENOTRECOVERABLE"),
    Some("ERFKILL"),
    Some("EHWPOISON"),
];

#[allow(missing_docs)]
impl Errno {
    pub const EPERM: Errno = Errno(1);
    pub const ENOENT: Errno = Errno(2);
    pub const ESRCH: Errno = Errno(3);
    pub const EINTR: Errno = Errno(4);
    pub const EIO: Errno = Errno(5);
    pub const ENXIO: Errno = Errno(6);
    pub const E2BIG: Errno = Errno(7);
    pub const ENOEXEC: Errno = Errno(8);
    pub const EBADF: Errno = Errno(9);
    pub const ECHILD: Errno = Errno(10);
    pub const EAGAIN: Errno = Errno(11);
    pub const ENOMEM: Errno = Errno(12);
    pub const EACCES: Errno = Errno(13);
    pub const EFAULT: Errno = Errno(14);
    pub const ENOTBLK: Errno = Errno(15);
    pub const EBUSY: Errno = Errno(16);
    pub const EEXIST: Errno = Errno(17);
    pub const EXDEV: Errno = Errno(18);
    pub const ENODEV: Errno = Errno(19);
    pub const ENOTDIR: Errno = Errno(20);
    pub const EISDIR: Errno = Errno(21);
    pub const EINVAL: Errno = Errno(22);
    pub const ENFILE: Errno = Errno(23);
    pub const EMFILE: Errno = Errno(24);
    pub const ENOTTY: Errno = Errno(25);
    pub const ETXTBSY: Errno = Errno(26);
    pub const EFBIG: Errno = Errno(27);
    pub const ENOSPC: Errno = Errno(28);
    pub const ESPIPE: Errno = Errno(29);
    pub const EROFS: Errno = Errno(30);
    pub const EMLINK: Errno = Errno(31);
    pub const EPIPE: Errno = Errno(32);
    pub const EDOM: Errno = Errno(33);
    pub const ERANGE: Errno = Errno(34);
    pub const EDEADLK: Errno = Errno(35);
    pub const ENAMETOOLONG: Errno = Errno(36);
    pub const ENOLCK: Errno = Errno(37);
    pub const ENOSYS: Errno = Errno(38);
    pub const ENOTEMPTY: Errno = Errno(39);
    pub const ELOOP: Errno = Errno(40);
    pub const ENOMSG: Errno = Errno(42);
    pub const EIDRM: Errno = Errno(43);
    pub const ECHRNG: Errno = Errno(44);
    pub const EL2NSYNC: Errno = Errno(45);
    pub const EL3HLT: Errno = Errno(46);
    pub const EL3RST: Errno = Errno(47);
    pub const ELNRNG: Errno = Errno(48);
    pub const EUNATCH: Errno = Errno(49);
    pub const ENOCSI: Errno = Errno(50);
    pub const EL2HLT: Errno = Errno(51);
    pub const EBADE: Errno = Errno(52);
    pub const EBADR: Errno = Errno(53);
    pub const EXFULL: Errno = Errno(54);
    pub const ENOANO: Errno = Errno(55);
    pub const EBADRQC: Errno = Errno(56);
    pub const EBADSLT: Errno = Errno(57);
    pub const EBFONT: Errno = Errno(59);
    pub const ENOSTR: Errno = Errno(60);
    pub const ENODATA: Errno = Errno(61);
    pub const ETIME: Errno = Errno(62);
    pub const ENOSR: Errno = Errno(63);
    pub const ENONET: Errno = Errno(64);
    pub const ENOPKG: Errno = Errno(65);
    pub const EREMOTE: Errno = Errno(66);
    pub const ENOLINK: Errno = Errno(67);
    pub const EADV: Errno = Errno(68);
    pub const ESRMNT: Errno = Errno(69);
    pub const ECOMM: Errno = Errno(70);
    pub const EPROTO: Errno = Errno(71);
    pub const EMULTIHOP: Errno = Errno(72);
    pub const EDOTDOT: Errno = Errno(73);
    pub const EBADMSG: Errno = Errno(74);
    pub const EOVERFLOW: Errno = Errno(75);
    pub const ENOTUNIQ: Errno = Errno(76);
    pub const EBADFD: Errno = Errno(77);
    pub const EREMCHG: Errno = Errno(78);
    pub const ELIBACC: Errno = Errno(79);
    pub const ELIBBAD: Errno = Errno(80);
    pub const ELIBSCN: Errno = Errno(81);
    pub const ELIBMAX: Errno = Errno(82);
    pub const ELIBEXEC: Errno = Errno(83);
    pub const EILSEQ: Errno = Errno(84);
    pub const ERESTART: Errno = Errno(85);
    pub const ESTRPIPE: Errno = Errno(86);
    pub const EUSERS: Errno = Errno(87);
    pub const ENOTSOCK: Errno = Errno(88);
    pub const EDESTADDRREQ: Errno = Errno(89);
    pub const EMSGSIZE: Errno = Errno(90);
    pub const EPROTOTYPE: Errno = Errno(91);
    pub const ENOPROTOOPT: Errno = Errno(92);
    pub const EPROTONOSUPPORT: Errno = Errno(93);
    pub const ESOCKTNOSUPPORT: Errno = Errno(94);
    pub const EOPNOTSUPP: Errno = Errno(95);
    pub const EPFNOSUPPORT: Errno = Errno(96);
    pub const EAFNOSUPPORT: Errno = Errno(97);
    pub const EADDRINUSE: Errno = Errno(98);
    pub const EADDRNOTAVAIL: Errno = Errno(99);
    pub const ENETDOWN: Errno = Errno(100);
    pub const ENETUNREACH: Errno = Errno(101);
    pub const ENETRESET: Errno = Errno(102);
    pub const ECONNABORTED: Errno = Errno(103);
    pub const ECONNRESET: Errno = Errno(104);
    pub const ENOBUFS: Errno = Errno(105);
    pub const EISCONN: Errno = Errno(106);
    pub const ENOTCONN: Errno = Errno(107);
    pub const ESHUTDOWN: Errno = Errno(108);
    pub const ETOOMANYREFS: Errno = Errno(109);
    pub const ETIMEDOUT: Errno = Errno(110);
    pub const ECONNREFUSED: Errno = Errno(111);
    pub const EHOSTDOWN: Errno = Errno(112);
    pub const EHOSTUNREACH: Errno = Errno(113);
    pub const EALREADY: Errno = Errno(114);
    pub const EINPROGRESS: Errno = Errno(115);
    pub const ESTALE: Errno = Errno(116);
    pub const EUCLEAN: Errno = Errno(117);
    pub const ENOTNAM: Errno = Errno(118);
    pub const ENAVAIL: Errno = Errno(119);
    pub const EISNAM: Errno = Errno(120);
    pub const EREMOTEIO: Errno = Errno(121);
    pub const EDQUOT: Errno = Errno(122);
    pub const ENOMEDIUM: Errno = Errno(123);
    pub const EMEDIUMTYPE: Errno = Errno(124);
    pub const ECANCELED: Errno = Errno(125);
    pub const ENOKEY: Errno = Errno(126);
    pub const EKEYEXPIRED: Errno = Errno(127);
    pub const EKEYREVOKED: Errno = Errno(128);
    pub const EKEYREJECTED: Errno = Errno(129);
    pub const EOWNERDEAD: Errno = Errno(130);
    pub const ENOTRECOVERABLE: Errno = Errno(131);
    pub const ERFKILL: Errno = Errno(132);
    pub const EHWPOISON: Errno = Errno(133);
    /// Same value as `EAGAIN`.
    pub const EWOULDBLOCK: Errno = Errno(11);
    /// Same value as `EDEADLK`.
    pub const EDEADLOCK: Errno = Errno(35);

    /// The Linux symbolic name (`"ENOMEM"` for 12), or `None` for numbers
    /// Linux does not define.
    pub fn name(self) -> Option<&'static str> {
        usize::try_from(self.0)
            .ok()
            .and_then(|i| NAMES.get(i).copied().flatten())
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
    use super::*;

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
        assert_eq!(Errno::EMFILE.0, 24);
    }

    #[test]
    fn display_is_name_and_number() {
        assert_eq!(format!("{}", Errno::ENOMEM), "ENOMEM 12");
        assert_eq!(format!("{}", Errno(41)), "UNKNOWN 41");
    }
}
