# RSNA Pneumonia detection, MGCA-style protocol at paper scale: ViT-B/16 at 224 px + FPN + RetinaNet;
# COCO mAP and MGCA's mAP over IoU 0.40:0.05:0.75; label fractions 1 / 10 / 100 %.
# Expects the sista_kit export layout (images/{id}.png, annotations/det_{split}.json with the
# opacity boxes, splits/), e.g. the RSNA adapter's export. Images without boxes stay in training.
_base_ = ["./det_retinanet_vit_synthetic.py"]

data_root = "data/rsna"
image_size = 224
max_iters = 8000

model = dict(
    backbone=dict(
        model_name="sista_vit_base_patch16_224", image_size=image_size, in_chans=3, out_indices=(3, 5, 7, 11)
    ),
    neck=dict(in_channels=[768, 768, 768, 768], out_channels=256),
    bbox_head=dict(
        num_classes=1,
        in_channels=256,
        stacked_convs=4,
        feat_channels=256,
        anchor_generator=dict(strides=[8, 16, 32, 64, 128]),
    ),
)
_dataset = dict(data_root=data_root, metainfo=dict(classes=("opacity",)))
train_dataloader = dict(batch_size=16, dataset=_dataset)
val_dataloader = dict(dataset=_dataset)
test_dataloader = dict(dataset=_dataset)
del _dataset
_iou = [0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75]
val_evaluator = [
    dict(
        type="sista_kit.SistaCocoMetric",
        ann_file=f"{data_root}/annotations/det_val.json",
        metric="bbox",
        prefix="coco",
    ),
    dict(
        type="sista_kit.SistaCocoMetric",
        ann_file=f"{data_root}/annotations/det_val.json",
        metric="bbox",
        iou_thrs=_iou,
        metric_items=["mAP"],
        prefix="mgca",
    ),
]
test_evaluator = [
    dict(
        type="sista_kit.SistaCocoMetric",
        ann_file=f"{data_root}/annotations/det_test.json",
        metric="bbox",
        prefix="coco",
    ),
    dict(
        type="sista_kit.SistaCocoMetric",
        ann_file=f"{data_root}/annotations/det_test.json",
        metric="bbox",
        iou_thrs=_iou,
        metric_items=["mAP"],
        prefix="mgca",
    ),
]
del _iou
train_cfg = dict(max_iters=max_iters, val_interval=1000)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=500),
    dict(type="CosineAnnealingLR", by_epoch=False, begin=0, end=max_iters, eta_min=1e-6),
]
default_hooks = dict(checkpoint=dict(interval=1000, save_best="mgca/bbox_mAP", rule="greater"))
