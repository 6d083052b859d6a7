"""Does a frozen text-to-video backbone keep the SynthHits v2 impact times where Fusion Blocks read it?

    python scripts/probe_video_features.py runs/v2/t2v

A frame-level linear probe (logistic regression, 90 training / 30 test clips of the v2 train split, converted
to the backbone's rate and size as the pipelines do): "an impact falls in this model frame", predicted from
the pixels and from the backbone's tokens (noised to t = 0.96, V2A's conditioning time) after the embedding
and after each block. Prints the test AUC of each. See docs/synthhits.md for the figures.
"""
import sys
import numpy as np, torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from av_link.data.synthetic_v2 import SynthHitsV2Config, generate_clip_v2
from av_link.data.dataset import resample_video_frames
from av_link.pipelines import AVLinkTextToVideoPipeline
torch.set_num_threads(1)
pipe = AVLinkTextToVideoPipeline.from_pretrained(sys.argv[1])
fps, height, width = pipe.video_transformer.config.frame_rate, pipe.config.height, pipe.config.width
vt = pipe.video_transformer.eval()
tok = pipe.tokenizer([""], return_tensors="pt", padding="max_length", max_length=8)
with torch.no_grad():
    text = pipe.text_encoder(tok.input_ids, attention_mask=tok.attention_mask)[0]
feats = {k: [] for k in ["pixels", "pixels3", "embed"] + [f"b{b}" for b in range(len(vt.blocks))]}
labels, groups = [], []
cfg = SynthHitsV2Config.split("train")
g = torch.Generator().manual_seed(0)
for i in range(120):
    c = generate_clip_v2(cfg, 5000 + i)
    v = resample_video_frames(c["frames"], c["fps"], fps, height, width)  # (F, height, width, 3)
    F = len(v)
    lab = np.zeros(F)
    for t in c["event_times"]:
        k = int(t * fps)
        if k < F: lab[k] = 1
    x = torch.from_numpy(v).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    xt = 0.96 * x + 0.04 * torch.randn(x.shape, generator=g)
    px = v.reshape(F, -1).astype(np.float32) / 255
    feats["pixels"].append(px)
    pad = np.pad(px, ((1, 1), (0, 0)), mode="edge")
    feats["pixels3"].append(np.concatenate([pad[:-2], pad[1:-1], pad[2:]], 1))
    with torch.no_grad():
        st = vt.embed(xt, torch.tensor([0.96]), text, tok.attention_mask)
        feats["embed"].append(st.hidden[0].reshape(F, -1).numpy())
        for b in range(len(vt.blocks)):
            st = vt.run_block(st)
            feats[f"b{b}"].append(st.hidden[0].reshape(F, -1).numpy())
    labels.append(lab); groups.append(np.full(F, i))
y = np.concatenate(labels); grp = np.concatenate(groups)
tr, te = grp < 90, grp >= 90
print("frames", len(y), "positives", int(y.sum()))
for k, f in feats.items():
    X = np.concatenate(f); X = (X - X[tr].mean(0)) / (X[tr].std(0) + 1e-6)
    clf = LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced").fit(X[tr], y[tr])
    p = clf.predict_proba(X[te])[:, 1]
    print(f"{k:8s} dims {X.shape[1]:5d}  test AUC {roc_auc_score(y[te], p):.3f}")
