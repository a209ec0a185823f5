# Shared runtime of every sista_kit OpenMMLab config: iteration-based schedule, checkpoints,
# a tqdm progress bar, CPU-friendly defaults. The entry point overrides max_iters and work_dir.
custom_imports = dict(imports=["sista_kit.downstream.mm"], allow_failed_imports=False)

max_iters = 2000
train_cfg = dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")

optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=1e-4, weight_decay=0.05),
    clip_grad=dict(max_norm=1.0),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type="CosineAnnealingLR", by_epoch=False, begin=0, end=max_iters, eta_min=1e-6),
]

default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(
        type="CheckpointHook", by_epoch=False, interval=max_iters, max_keep_ckpts=1, save_last=True
    ),
    sampler_seed=dict(type="DistSamplerSeedHook"),
)
# SafeCheckpointHook: checkpoints that resume under torch's weights-only loading (see mm/safe_load.py).
custom_hooks = [dict(type="sista_kit.TqdmProgressHook"), dict(type="sista_kit.SafeCheckpointHook")]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
    dist_cfg=dict(backend="nccl"),
)
log_processor = dict(by_epoch=False)
log_level = "WARNING"
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
