# Copyright (c) mmuol contributors. All rights reserved.
"""Regenerate ``configs/<method>/metafile.yml`` and ``model-index.yml`` for mim.

For the training-free localizers (``COLLECTIONS``) every config under
``configs/<method>/`` becomes one model entry; the
"Weights" are the official backbone weights the config loads. Only published
numbers that were verified against the upstream READMEs are recorded
(``OFFICIAL``); mmuol's own numbers go here once someone runs the configs
with the released weights.

Usage:
    python tools/misc/gen_model_index.py
"""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

COLLECTIONS = {
    'lost': ('LOST', 'Localizing Objects with Self-Supervised Transformers and no Labels',
             'https://arxiv.org/abs/2109.14279', 'Object Discovery'),
    'tokencut':
    ('TokenCut', 'Self-Supervised Transformers for Unsupervised Object '
     'Discovery using Normalized Cut', 'https://arxiv.org/abs/2202.11539', 'Object Discovery'),
    'dinoseg': ('DINO-seg', 'Localizing Objects with Self-Supervised Transformers and no Labels '
                '(DINO-seg baseline)', 'https://arxiv.org/abs/2109.14279', 'Object Discovery'),
    'maskcut': ('MaskCut', 'Cut and Learn for Unsupervised Object Detection and Instance '
                'Segmentation', 'https://arxiv.org/abs/2301.11320', 'Object Discovery'),
    'found': ('FOUND', 'Unsupervised Object Localization: Observing the Background to Discover '
              'Objects', 'https://arxiv.org/abs/2212.07834', 'Object Discovery'),
}
DATASETS = {
    'voc07': 'VOC2007',
    'voc12': 'VOC2012',
    'coco20k': 'COCO20k',
    'ecssd': 'ECSSD',
    'duts-te': 'DUTS-TE',
    'dut-omron': 'DUT-OMRON',
    'duts-tr': 'DUTS-TR'
}
WEIGHTS = {
    'vits16': 'https://dl.fbaipublicfiles.com/dino/dino_deitsmall16_pretrain/'
    'dino_deitsmall16_pretrain.pth',
    'vits8': 'https://dl.fbaipublicfiles.com/dino/dino_deitsmall8_300ep_pretrain/'
    'dino_deitsmall8_300ep_pretrain.pth',
    'vitb16': 'https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/'
    'dino_vitbase16_pretrain.pth',
    'vitb8': 'https://dl.fbaipublicfiles.com/dino/dino_vitbase8_pretrain/'
    'dino_vitbase8_pretrain.pth',
}
# CorLoc (%) from the official READMEs (LOST @ fcedbec, TokenCut @ fed52cd).
OFFICIAL = {
    ('lost', 'vits16'): dict(voc07=61.9, voc12=64.0, coco20k=50.7),
    ('lost', 'vits8'): dict(voc07=55.5, voc12=57.0, coco20k=49.5),
    ('lost', 'vitb16'): dict(voc07=60.1, voc12=63.3, coco20k=50.0),
    ('tokencut', 'vits16'): dict(voc07=68.8, voc12=72.1, coco20k=58.8),
    ('tokencut', 'vits8'): dict(voc07=67.3, voc12=71.6, coco20k=60.7),
    ('tokencut', 'vitb16'): dict(voc07=68.8, voc12=72.4, coco20k=59.0),
}


def main() -> None:
    index = []
    for method, (name, title, url, task) in COLLECTIONS.items():
        folder = ROOT / 'configs' / method
        configs = sorted(folder.glob('*.py'))
        if not configs:
            continue
        lines = [
            'Collections:', f'  - Name: {name}', '    Metadata:',
            '      Training Data: none (training-free)' if method != 'found' else
            '      Training Data: DUTS-TR (images only)', '    Paper:', f'      URL: {url}',
            f"      Title: '{title}'", f'    README: configs/{method}/README.md', '', 'Models:'
        ]
        for cfg in configs:
            stem = cfg.stem
            backbone = re.search(r'dino-(vit[sb]\d+)', stem).group(1)
            dataset = stem.rsplit('_', 1)[-1]
            entry = [
                f'  - Name: {stem}', f'    In Collection: {name}',
                f'    Config: configs/{method}/{stem}.py', '    Metadata:',
                f'      Backbone: DINO {backbone.replace("vit", "ViT-").upper()}'.replace(
                    'VIT-', 'ViT-')
            ]
            score = OFFICIAL.get((method, backbone), {}).get(dataset)
            if score is not None:
                entry += [
                    '    Results:', f'      - Task: {task}',
                    f'        Dataset: {DATASETS[dataset]}', '        Metrics:',
                    f'          CorLoc (official): {score}'
                ]
            entry.append(f'    Weights: {WEIGHTS[backbone]}')
            lines += entry
        (folder / 'metafile.yml').write_text('\n'.join(lines) + '\n')
        index.append(method)
    # Hand-written metafiles (methods with several collections or trained
    # models: CLIP-DINOiser, CutLER, STEGO, DSM) are indexed as they are.
    index += sorted(
        p.parent.name for p in (ROOT / 'configs').glob('*/metafile.yml')
        if p.parent.name not in index)
    (ROOT / 'model-index.yml').write_text('Import:\n' + ''.join(f'  - configs/{m}/metafile.yml\n'
                                                                for m in index))
    print(f'wrote model-index.yml with {len(index)} metafiles '
          f'({len(COLLECTIONS)} generated)')


if __name__ == '__main__':
    main()
