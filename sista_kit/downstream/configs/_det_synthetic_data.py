# Data of the detection configs on the embedded synthetic data (sista_kit.data.synthetic.write_dataset
# layout): boxes of the localised findings (RSNA-like), COCO json per split.
# Metrics: COCO mAP@[.5:.95] and MGCA's mAP over IoU 0.40:0.05:0.75.
_base_ = ["./_runtime.py"]
default_scope = "mmdet"

data_root = "data/synthetic"
image_size = 128
classes = ("consolidation", "nodule", "effusion", "pneumothorax", "cardiomegaly", "atelectasis")
data_preprocessor = dict(
    type="DetDataPreprocessor", mean=[127.5], std=[63.75], bgr_to_rgb=False, pad_size_divisor=32
)

train_pipeline = [
    dict(type="LoadImageFromFile", color_type="grayscale"),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(type="Resize", scale=(image_size, image_size), keep_ratio=False),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile", color_type="grayscale"),
    dict(type="Resize", scale=(image_size, image_size), keep_ratio=False),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(type="PackDetInputs", meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor")),
]


def _split(name, pipeline, train=False):
    return dict(
        type="sista_kit.SistaCocoDataset",
        data_root=data_root,
        ann_file=f"annotations/det_{name}.json",
        data_prefix=dict(img=""),
        metainfo=dict(classes=classes),
        pipeline=pipeline,
        filter_cfg=dict(filter_empty_gt=False, min_size=1) if train else None,
        test_mode=not train,
        label_fraction=1.0,
        fraction_seed=0,
    )


train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    batch_sampler=None,
    dataset=_split("train", train_pipeline, train=True),
)
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=_split("val", test_pipeline),
)
test_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=_split("test", test_pipeline),
)
del _split
# COCO mAP@[.5:.95], and MGCA's protocol: mAP averaged over IoU 0.40:0.05:0.75.
val_evaluator = [
    dict(
        type="sista_kit.SistaCocoMetric",
        ann_file=f"{data_root}/annotations/det_val.json",
        metric="bbox",
        format_only=False,
        prefix="coco",
    ),
    dict(
        type="sista_kit.SistaCocoMetric",
        ann_file=f"{data_root}/annotations/det_val.json",
        metric="bbox",
        format_only=False,
        iou_thrs=[0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75],
        metric_items=["mAP"],
        prefix="mgca",
    ),
]
test_evaluator = [
    dict(
        type="sista_kit.SistaCocoMetric",
        ann_file=f"{data_root}/annotations/det_test.json",
        metric="bbox",
        format_only=False,
        prefix="coco",
    ),
    dict(
        type="sista_kit.SistaCocoMetric",
        ann_file=f"{data_root}/annotations/det_test.json",
        metric="bbox",
        format_only=False,
        iou_thrs=[0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75],
        metric_items=["mAP"],
        prefix="mgca",
    ),
]
