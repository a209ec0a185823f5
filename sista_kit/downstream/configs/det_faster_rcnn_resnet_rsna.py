# RSNA Pneumonia detection with a ResNet-50 tower + FPN + Faster R-CNN at 224 px; data layout and
# metrics as det_retinanet_vit_rsna.py.
_base_ = ["./det_faster_rcnn_vit_synthetic.py"]

data_root = "data/rsna"
image_size = 224
max_iters = 8000

model = dict(
    backbone=dict(
        _delete_=True,
        type="sista_kit.SistaResNet",
        checkpoint="random",
        model_name="sista_resnet50",
        image_size=image_size,
        in_chans=3,
        out_indices=(1, 2, 3, 4),
        frozen=False,
    ),
    neck=dict(in_channels=[256, 512, 1024, 2048], out_channels=256),
    rpn_head=dict(in_channels=256, feat_channels=256, anchor_generator=dict(strides=[4, 8, 16, 32, 64])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=256, featmap_strides=[4, 8, 16, 32]),
        bbox_head=dict(in_channels=256, fc_out_channels=1024, num_classes=1),
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
