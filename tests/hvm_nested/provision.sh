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

# The same kernel as a guest of forkvm (forkbench's Linux reference): its
# config, and the modules its /init loads for the virtio console (with
# what they depend on, in load order) unless they are built in.
guest_dir="$kernel_dir/guest"
if [ ! -f "$guest_dir/ready" ]; then
    package=$(cat "$kernel_dir/package")
    say "fetching $package for the Linux guest's modules"
    rm -rf "$guest_dir" "$cache/deb"
    mkdir -p "$cache/deb" "$guest_dir/modules"
    (cd "$cache/deb" && apt-get download -q "$package" >&2 2>/dev/null) \
        || (cd "$cache/deb" && apt-get download -q "$package" >&2)
    dpkg-deb -x "$cache"/deb/*.deb "$cache/deb/root"
    cp "$cache"/deb/root/boot/config-* "$guest_dir/config"
    modroot="$cache/deb/root/lib/modules"
    # A module's file, decompressed, with what its .modinfo says it
    # depends on added first.
    add_module() { # $1: module name
        local name=$1 found dep
        grep -qx "$name" "$guest_dir/modules/order" && return 0
        found=$(find "$modroot" -name "$name.ko*" | head -n 1)
        [ -n "$found" ] || { say "$package has no module $name"; return 1; }
        case "$found" in
            *.ko) cp "$found" "$guest_dir/modules/$name.ko" ;;
            *.ko.xz) xz -dc "$found" > "$guest_dir/modules/$name.ko" ;;
            *.ko.zst) zstd -qdc "$found" > "$guest_dir/modules/$name.ko" ;;
        esac
        for dep in $(tr '\0' '\n' < "$guest_dir/modules/$name.ko" | sed -n 's/^depends=//p' | tr , ' '); do
            add_module "$dep" || return 1
        done
        echo "$name" >> "$guest_dir/modules/order"
    }
    touch "$guest_dir/modules/order"
    for module in virtio_mmio virtio_console; do
        if grep -q "^CONFIG_$(echo "$module" | tr a-z A-Z)=m" "$guest_dir/config"; then
            add_module "$module" || exit 1
        elif ! grep -q "^CONFIG_$(echo "$module" | tr a-z A-Z)=y" "$guest_dir/config"; then
            say "$package has no $module, built in or as a module"; exit 1
        fi
    done
    rm -rf "$cache/deb"
    touch "$guest_dir/ready"
fi

echo "QEMU=$(command -v qemu-system-x86_64)"
echo "BUSYBOX=/bin/busybox"
echo "KERNEL=$kernel_dir/vmlinuz"
echo "MODULES=$kernel_dir/modules"
echo "GUEST_MODULES=$guest_dir/modules"
echo "GUEST_CONFIG=$guest_dir/config"
echo "KERNEL_PACKAGE=$(cat "$kernel_dir/package")"
