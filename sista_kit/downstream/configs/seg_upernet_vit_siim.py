# SIIM-ACR pneumothorax segmentation, MGCA-style protocol at paper scale: ViT-B/16 at 224 px +
# UPerNet, Dice on the pneumothorax class, label fractions 1 / 10 / 100 % of the training split.
# Expects the data in the sista_kit export layout (images/{id}.png, masks/{id}.png with
# 0 = background and 1 = pneumothorax, splits/{train,val,test}.txt), e.g. the SIIM adapter's export.
_base_ = ["./seg_upernet_vit_synthetic.py"]

data_root = "data/siim"
image_size = 224
source_classes = ("background", "pneumothorax")
classes = source_classes
max_iters = 8000

model = dict(
    data_preprocessor=dict(size=(image_size, image_size)),
    backbone=dict(
        model_name="sista_vit_base_patch16_224", image_size=image_size, in_chans=3, out_indices=(3, 5, 7, 11)
    ),
    decode_head=dict(in_channels=[768, 768, 768, 768], channels=256, num_classes=2),
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
