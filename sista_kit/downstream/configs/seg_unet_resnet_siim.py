# SIIM-ACR pneumothorax segmentation with a ResNet-50 tower + U-Net decoder (MGCA's ResNet protocol),
# 224 px; data layout as seg_upernet_vit_siim.py.
_base_ = ["./seg_unet_resnet_synthetic.py"]

data_root = "data/siim"
image_size = 224
source_classes = ("background", "pneumothorax")
classes = source_classes
max_iters = 8000

model = dict(
    data_preprocessor=dict(size=(image_size, image_size)),
    backbone=dict(model_name="sista_resnet50", image_size=image_size, in_chans=3),
    decode_head=dict(in_channels=[256, 512, 1024, 2048], channels=64, max_channels=512, num_classes=2),
)
_dataset = dict(data_root=data_root, source_classes=source_classes, metainfo=dict(classes=classes))
train_dataloader = dict(batch_size=16, dataset=_dataset)
val_dataloader = dict(batch_size=16, dataset=_dataset)
test_dataloader = dict(batch_size=16, dataset=_dataset)
del _dataset
train_cfg = dict(max_iters=max_iters, val_interval=1000)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=500),
    dict(type="CosineAnnealingLR", by_epoch=False, begin=0, end=max_iters, eta_min=1e-6),
]
default_hooks = dict(checkpoint=dict(interval=1000, save_best="mDice", rule="greater"))
