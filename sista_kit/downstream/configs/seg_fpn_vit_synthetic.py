# Segmentation on the embedded synthetic data (sista_kit.data.synthetic.write_dataset layout):
# sista_kit ViT (simple feature pyramid) + FPN neck + FPN head (semantic FPN).
# Label maps hold 0 = background and 1..6 = the localised findings; `classes` picks which ones are
# segmented (any finding not listed becomes background), e.g. ("background", "pneumothorax") for a
# SIIM-like binary task. The default segments every localised finding.
_base_ = ["./_runtime.py"]
default_scope = "mmseg"

data_root = "data/synthetic"
image_size = 128
source_classes = (
    "background",
    "consolidation",
    "nodule",
    "effusion",
    "pneumothorax",
    "cardiomegaly",
    "atelectasis",
)
classes = source_classes
norm_cfg = dict(type="BN", requires_grad=True)

data_preprocessor = dict(
    type="SegDataPreProcessor",
    mean=[127.5],
    std=[63.75],
    bgr_to_rgb=False,
    pad_val=0,
    seg_pad_val=255,
    size=(image_size, image_size),
)
model = dict(
    _scope_="mmseg",
    type="EncoderDecoder",
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type="sista_kit.SistaViT",
        checkpoint="random",
        model_name="sista_vit_tiny",
        image_size=image_size,
        in_chans=1,
        out_indices=(-1,),
        frozen=False,
    ),
    neck=dict(type="FPN", in_channels=[192, 192, 192, 192], out_channels=64, num_outs=4),
    decode_head=dict(
        type="FPNHead",
        in_channels=[64, 64, 64, 64],
        in_index=[0, 1, 2, 3],
        feature_strides=[2, 4, 8, 16],
        channels=64,
        dropout_ratio=0.1,
        num_classes=len(classes),
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=[
            dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
            dict(type="DiceLoss", loss_weight=1.0),
        ],
    ),
    train_cfg=dict(),
    test_cfg=dict(mode="whole"),
)

train_pipeline = [
    dict(type="LoadImageFromFile", color_type="grayscale"),
    dict(type="LoadAnnotations"),
    dict(type="Resize", scale=(image_size, image_size), keep_ratio=False),
    dict(type="RandomFlip", prob=0.0),
    dict(type="PackSegInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile", color_type="grayscale"),
    dict(type="Resize", scale=(image_size, image_size), keep_ratio=False),
    dict(type="LoadAnnotations"),
    dict(type="PackSegInputs"),
]


def _split(name, pipeline, fraction=1.0):
    return dict(
        type="sista_kit.SistaSegDataset",
        data_root=data_root,
        ann_file=f"splits/{name}.txt",
        data_prefix=dict(img_path="images", seg_map_path="masks"),
        source_classes=source_classes,
        metainfo=dict(classes=classes),
        pipeline=pipeline,
        label_fraction=fraction,
        fraction_seed=0,
    )


train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    dataset=_split("train", train_pipeline),
)
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=_split("val", test_pipeline),
)
test_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=_split("test", test_pipeline),
)
del _split
val_evaluator = dict(type="sista_kit.SistaIoUMetric", iou_metrics=["mIoU", "mDice"])
test_evaluator = val_evaluator
