//! cgroup memory limits: `/proc/self/cgroup` membership, limit files of both interfaces, and
//! limits read from a cgroup tree laid out as the kernel mounts it.

use std::fs;
use std::path::Path;

use inferkit_core::{Error, Memory};
use inferkit_probe::cgroup::{
    CgroupMemory, CgroupVersion, MemoryCgroup, effective_ram, parse_limit, parse_proc_self_cgroup,
    parse_stat, read_limit,
};

const GIB: u64 = 1 << 30;

#[test]
fn v1_memory_controller_line_is_found_among_the_others() {
    // As on a Docker host with cgroup v1 (the v2 `0::/` line is the empty unified hierarchy).
    let text = "9:name=systemd:/\n4:memory:/docker/3f2a9c\n3:cpuset:/\n1:cpu,cpuacct:/docker/3f2a9c\n0::/\n";
    assert_eq!(
        parse_proc_self_cgroup(text),
        Some(MemoryCgroup {
            version: CgroupVersion::V1,
            path: "/docker/3f2a9c".into()
        })
    );
}

#[test]
fn v2_unified_line_is_used_when_no_v1_memory_controller_exists() {
    let text = "0::/kubepods.slice/kubepods-pod12.slice/cri-containerd-ab.scope\n";
    let cgroup = parse_proc_self_cgroup(text).unwrap();
    assert_eq!(cgroup.version, CgroupVersion::V2);
    assert_eq!(
        cgroup.path,
        "/kubepods.slice/kubepods-pod12.slice/cri-containerd-ab.scope"
    );
    assert_eq!(parse_proc_self_cgroup(""), None);
}

#[test]
fn limit_files_of_both_interfaces() {
    let file = Path::new("memory.max");
    assert_eq!(parse_limit("max\n", file).unwrap(), None);
    assert_eq!(parse_limit("17179869184\n", file).unwrap(), Some(16 * GIB));
    // v1 without a limit: PAGE_COUNTER_MAX pages.
    assert_eq!(parse_limit("9223372036854771712\n", file).unwrap(), None);
    match parse_limit("16G\n", file).unwrap_err() {
        Error::Parse { file, what, .. } => {
            assert_eq!(file, Path::new("memory.max"));
            assert!(what.contains("`16G`"), "{what}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn stat_values_are_found_by_exact_key() {
    let stat = "active_file 4096\ninactive_file 1048576\ntotal_inactive_file 2097152\n";
    assert_eq!(parse_stat(stat, "inactive_file"), Some(1 << 20));
    assert_eq!(parse_stat(stat, "total_inactive_file"), Some(2 << 20));
    assert_eq!(parse_stat(stat, "anon"), None);
}

fn write(dir: &Path, file: &str, text: &str) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(file), text).unwrap();
}

#[test]
fn v2_parent_limit_binds_a_child_without_one() {
    let root = tempfile::tempdir().unwrap();
    let pod = root.path().join("kubepods.slice/pod12");
    let container = pod.join("ctr");
    write(root.path(), "memory.max", "max\n");
    write(&pod, "memory.max", "8589934592\n");
    write(&pod, "memory.current", "3221225472\n");
    write(
        &pod,
        "memory.stat",
        "anon 2147483648\ninactive_file 1073741824\n",
    );
    write(&container, "memory.max", "max\n");
    let cgroup = MemoryCgroup {
        version: CgroupVersion::V2,
        path: "/kubepods.slice/pod12/ctr".into(),
    };
    let limit = read_limit(root.path(), &cgroup).unwrap();
    // 3 GiB charged, 1 GiB of it reclaimable page cache: 2 GiB working set.
    assert_eq!(
        limit,
        Some(CgroupMemory {
            limit: 8 * GIB,
            working_set: 2 * GIB
        })
    );
}

#[test]
fn v1_container_sees_its_own_cgroup_at_the_root() {
    // /proc/self/cgroup names /docker/<id>, but the container's mount shows that cgroup as the
    // hierarchy root: the missing levels are skipped.
    let root = tempfile::tempdir().unwrap();
    let memory = root.path().join("memory");
    write(&memory, "memory.limit_in_bytes", "4294967296\n");
    write(&memory, "memory.usage_in_bytes", "1610612736\n");
    write(
        &memory,
        "memory.stat",
        "inactive_file 1\ntotal_inactive_file 536870912\n",
    );
    let cgroup = MemoryCgroup {
        version: CgroupVersion::V1,
        path: "/docker/3f2a9c".into(),
    };
    assert_eq!(
        read_limit(root.path(), &cgroup).unwrap(),
        Some(CgroupMemory {
            limit: 4 * GIB,
            working_set: GIB
        })
    );
}

#[test]
fn no_limit_anywhere_is_none() {
    let root = tempfile::tempdir().unwrap();
    let memory = root.path().join("memory");
    write(&memory, "memory.limit_in_bytes", "9223372036854771712\n");
    write(
        &memory.join("user.slice"),
        "memory.limit_in_bytes",
        "9223372036854771712\n",
    );
    let cgroup = MemoryCgroup {
        version: CgroupVersion::V1,
        path: "/user.slice".into(),
    };
    assert_eq!(read_limit(root.path(), &cgroup).unwrap(), None);
}

#[test]
fn a_garbled_limit_file_is_a_parse_error_naming_it() {
    let root = tempfile::tempdir().unwrap();
    write(root.path(), "memory.max", "lots\n");
    let cgroup = MemoryCgroup {
        version: CgroupVersion::V2,
        path: "/".into(),
    };
    match read_limit(root.path(), &cgroup).unwrap_err() {
        Error::Parse { file, .. } => assert_eq!(file, root.path().join("memory.max")),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn effective_ram_is_capped_by_the_limit() {
    let physical = Memory {
        total: 512 * GIB,
        used: 100 * GIB,
        reserved: None,
    };
    let limited = effective_ram(
        physical,
        Some(CgroupMemory {
            limit: 16 * GIB,
            working_set: 6 * GIB,
        }),
    );
    assert_eq!(
        limited,
        Memory {
            total: 16 * GIB,
            used: 6 * GIB,
            reserved: None,
        }
    );
    // A limit above the machine's RAM does not apply.
    let unlimited = effective_ram(
        physical,
        Some(CgroupMemory {
            limit: 1024 * GIB,
            working_set: GIB,
        }),
    );
    assert_eq!(unlimited, physical);
    assert_eq!(effective_ram(physical, None), physical);
}

#[test]
fn a_host_short_of_memory_shrinks_the_cgroup_headroom() {
    // 16 GiB limit, 2 GiB used by the cgroup, but the host has only 4 GiB free.
    let physical = Memory {
        total: 64 * GIB,
        used: 60 * GIB,
        reserved: None,
    };
    let ram = effective_ram(
        physical,
        Some(CgroupMemory {
            limit: 16 * GIB,
            working_set: 2 * GIB,
        }),
    );
    assert_eq!(
        ram,
        Memory {
            total: 16 * GIB,
            used: 12 * GIB,
            reserved: None,
        }
    );
}
