#!/usr/bin/env bash
# Provides what tests/hvm_nested.rs needs to run the guest under ordinary
# (SVM) KVM on a machine whose own KVM is PVM: QEMU (TCG, which emulates
# AMD SVM), a static busybox for the nested VM's init, and a Debian Linux
# kernel with its KVM modules. Idempotent; installs with apt when missing
# (needs root and Debian's package lists). Prints KEY=VALUE lines.
#
# usage: provision.sh CACHE_DIR
set -euo pipefail
cache=${1:?usage: provision.sh CACHE_DIR}
mkdir -p "$cache"

say() { echo "provision: $*" >&2; }

need_packages=()
command -v qemu-system-x86_64 >/dev/null || need_packages+=(qemu-system-x86)
[ -x /bin/busybox ] || need_packages+=(busybox-static)
command -v dpkg-deb >/dev/null || need_packages+=(dpkg)
if [ ${#need_packages[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        say "missing ${need_packages[*]}: install them (Debian: apt-get install ${need_packages[*]})"
        exit 1
    fi
    say "installing ${need_packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${need_packages[@]}" >&2; then
        apt-get update -q >&2
        apt-get install -y -q --no-install-recommends "${need_packages[@]}" >&2
    fi
fi

# The kernel: Debian's current linux-image-amd64, unpacked (not installed).
kernel_dir="$cache/linux"
if [ ! -f "$kernel_dir/ready" ]; then
    command -v apt-get >/dev/null || { say "no apt-get: cannot fetch a Linux kernel package"; exit 1; }
    package=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    [ -n "$package" ] || { say "cannot resolve linux-image-amd64 (apt-get update?)"; exit 1; }
    say "fetching $package"
    rm -rf "$kernel_dir" "$cache/deb"
    mkdir -p "$cache/deb" "$kernel_dir/modules"
    (cd "$cache/deb" && apt-get download -q "$package" >&2 2>/dev/null) \
        || (cd "$cache/deb" && apt-get download -q "$package" >&2)
    dpkg-deb -x "$cache"/deb/*.deb "$cache/deb/root"
    cp "$cache"/deb/root/boot/vmlinuz-* "$kernel_dir/vmlinuz"
    # kvm-amd needs kvm and ccp; kvm needs irqbypass. Loaded in this order.
    for module in irqbypass ccp kvm kvm-amd; do
        found=$(find "$cache/deb/root/lib/modules" -name "$module.ko*" | head -n 1)
        [ -n "$found" ] || { say "$package has no $module module"; exit 1; }
        case "$found" in
            *.ko) cp "$found" "$kernel_dir/modules/$module.ko" ;;
            *.ko.xz) xz -dc "$found" > "$kernel_dir/modules/$module.ko" ;;
            *.ko.zst) zstd -qdc "$found" > "$kernel_dir/modules/$module.ko" ;;
            *) say "unknown module compression: $found"; exit 1 ;;
        esac
        echo "$module" >> "$kernel_dir/modules/order"
    done
    echo "$package" > "$kernel_dir/package"
    rm -rf "$cache/deb"
    touch "$kernel_dir/ready"
fi

echo "QEMU=$(command -v qemu-system-x86_64)"
echo "BUSYBOX=/bin/busybox"
echo "KERNEL=$kernel_dir/vmlinuz"
echo "MODULES=$kernel_dir/modules"
echo "KERNEL_PACKAGE=$(cat "$kernel_dir/package")"
