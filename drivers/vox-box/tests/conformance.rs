//! core's driver conformance suite, on a model of each family, on one GPU and on CPU.

mod support;

use inferkit_core::testkit::{check_backend, gpu, host};
use inferkit_vox_box::VoxBox;
use support::{huggingface, local, remote};

#[test]
fn conformance_on_one_gpu() {
    for dir in [
        "faster-whisper-large-v3",
        "CosyVoice-300M-SFT",
        "Dia-1.6B",
        "bark-small",
    ] {
        let (facts, spec) = local(dir);
        check_backend(
            &VoxBox::new(),
            &facts,
            &spec,
            &[gpu("w1", 0, 24)],
            &host("w1", 64),
        );
    }
}

#[test]
fn conformance_on_cpu() {
    let (facts, spec) = local("CosyVoice2-0.5B");
    check_backend(&VoxBox::new(), &facts, &spec, &[], &host("w1", 16));
    let (facts, spec) = remote(huggingface("Systran/faster-whisper-tiny"));
    check_backend(&VoxBox::new(), &facts, &spec, &[], &host("w1", 4));
}
