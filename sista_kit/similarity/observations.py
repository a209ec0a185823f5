"""The observation list of the report labeler: each observation with the phrases that mention it.

The first 13 follow CheXpert's observations (without "No Finding", which the labeler decides);
the rest cover what chest X-ray reports describe beyond them (spine, aorta, granulomas, lung
volumes, surgery, image quality), so that "normal" means "nothing abnormal is mentioned". Patterns
are regular expressions over the lower-cased text; observations are matched in list order and a
span claimed by an earlier one is not matched again ("nodular opacity" is a lesion, not an opacity).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Observation:
    """One observation: its name, a short description and its mention patterns."""

    name: str
    description: str
    patterns: tuple[str, ...]

    @property
    def regex(self) -> re.Pattern[str]:
        return _compiled(self.patterns)


_CACHE: dict[tuple[str, ...], re.Pattern[str]] = {}


def _compiled(patterns: tuple[str, ...]) -> re.Pattern[str]:
    if patterns not in _CACHE:
        _CACHE[patterns] = re.compile(r"\b(?:" + "|".join(patterns) + r")")
    return _CACHE[patterns]


_HEART = r"(?:heart|cardiac|cardiomediastinal|cardio-mediastinal)"
_ENLARGED = r"(?:enlarged|enlargement|large|prominent|increased|cardiomegaly)"

OBSERVATIONS: tuple[Observation, ...] = (
    # Claimed first: phrases whose words would otherwise match another observation.
    Observation(
        "other",
        "other abnormality: pericardial effusion, free air, subcutaneous emphysema, foreign body, "
        "cysts, cavities, lucencies, nipple shadows, pulmonary hypertension, mediastinal shift, sarcoidosis, "
        "tuberculosis, calcified hepatic or abdominal lesions",
        (
            r"pericardial effusions?",
            r"subcutaneous (?:emphysema|air|gas)",
            r"pneumoperitoneum",
            r"free (?:intraperitoneal )?air",
            r"pneumomediastinum",
            r"foreign bod(?:y|ies)",
            r"cysts?\b",
            r"cystic",
            r"cavit\w*",
            r"lucen(?:t|cy|cies)",
            r"nipple shadows?",
            r"epicardial fat",
            r"fat pad",
            r"pulmonary (?:arterial )?hypertension",
            r"(?:enlarged|prominent|dilated) (?:central )?pulmonary arter\w*",
            r"pulmonary arter\w* (?:is |are )?(?:enlarged|prominent|dilated)",
            r"(?:mediastinal|tracheal) (?:shift|deviation)",
            r"deviation of the trachea",
            r"sarcoid\w*",
            r"tuberculosis",
            r"artifact",
            r"piercings?|nipple rings?|jewel\w*|body rings?",
            r"cholelithiasis|gallstones?",
            r"chronic changes",
            r"lymphoma|myeloma",
        ),
    ),
    Observation(
        "enlarged_cardiomediastinum",
        "widened mediastinum, hilar or mediastinal enlargement, adenopathy",
        (
            r"widen\w* (?:of )?(?:the )?(?:superior )?mediastin\w*",
            r"mediastin\w* (?:contours? |silhouette )?(?:is |are |appears )?widen\w*",
            r"mediastinal (?:widening|enlargement|mass|fullness|prominence)",
            r"(?:hilar|mediastinal|paratracheal) (?:lymph)?(?:adenopathy|prominence|fullness|enlargement)",
            r"(?:lymph|hilar) (?:node )?enlargement",
            r"(?:enlarged|prominent|full|bulky) (?:right |left |bilateral )?(?:hila|hilum|hilar|lymph node)",
            r"(?:hila|hilum) (?:are |is |appears? )?(?:enlarged|prominent|full)",
            r"lymphadenopathy|adenopathy",
        ),
    ),
    Observation(
        "cardiomegaly",
        "enlarged heart or cardiac silhouette",
        (
            r"cardiomegaly",
            rf"{_ENLARGED} (?:\w+ ){{0,2}}(?:heart|cardiac (?:silhouette|shadow|size|contour))",
            rf"(?:enlargement|increase) (?:in |of )(?:the )?{_HEART}",
            rf"{_HEART} (?:\w+ ){{0,5}}(?:enlarged|enlargement|large|prominent|increased)",
            r"cardiac enlargement",
        ),
    ),
    Observation(
        "lung_lesion",
        "nodule, mass, tumour, metastasis",
        (
            r"(?:nodular|mass-?like|rounded) (?:opacit\w*|densit\w*)",
            r"nodul\w*",
            r"masses|mass\b",
            r"mass-?like",
            r"lesions?",
            r"neoplas\w*|tumou?rs?|malignan\w*|carcinoma|cancer",
            r"metasta\w*",
        ),
    ),
    Observation(
        "edema",
        "pulmonary edema, vascular congestion, heart failure",
        (
            r"o?edema",
            r"(?:vascular|pulmonary|venous|interstitial) congestion",
            r"congestive",
            r"heart failure|\bchf\b",
            r"fluid overload",
            r"vascular (?:prominence|engorgement|redistribution|indistinctness)",
            r"cephalization",
            r"engorge\w*",
            r"kerley",
        ),
    ),
    Observation(
        "pleural_effusion",
        "pleural effusion, pleural fluid, blunted costophrenic angle",
        (
            r"effusions?",
            r"pleural fluid",
            r"fluid (?:collections?|in the (?:right |left )?(?:pleural|fissure))",
            r"blunt\w* (?:of )?(?:the )?(?:\w+ ){0,2}(?:costophrenic|cp|costodiaphragmatic)",
            r"(?:costophrenic|cp) (?:angles?|sulc\w*|recess\w*) (?:is |are )?(?:blunt|obscured|obliterated)",
            r"hydrothorax|hemothorax",
        ),
    ),
    Observation(
        "pneumothorax",
        "pneumothorax",
        (r"(?:hydro|hemo)?pneumothora\w*",),
    ),
    Observation(
        "pneumonia",
        "pneumonia, infection",
        (r"(?:broncho)?pneumoni\w*", r"infecti\w*", r"pneumonitis", r"aspiration"),
    ),
    Observation(
        "consolidation",
        "consolidation",
        (r"consolidat\w*",),
    ),
    Observation(
        "atelectasis",
        "atelectasis, volume loss, lobar collapse",
        (
            r"atelecta\w*",
            r"volume loss",
            r"(?:lobar|lobe|lung|segmental) collapse",
            r"collapse of the (?:\w+ ){0,2}(?:lobe|lung)",
        ),
    ),
    Observation(
        "lung_opacity",
        "opacity, density, infiltrate, airspace disease",
        (
            r"opaci\w*",
            r"densit(?:y|ies)",
            r"infiltrat\w*",
            r"air ?space (?:disease|process)",
            r"haziness|hazy",
            r"ground.glass",
        ),
    ),
    Observation(
        "pleural_other",
        "pleural thickening, plaques, pleural scarring",
        (
            r"pleural (?:thickening|plaques?|calcifications?|scarring|reaction|retraction)",
            r"thicken\w* (?:of )?(?:the )?(?:\w+ )?(?:pleura|pleural|fissures?)",
            r"(?:pleura|fissures?) (?:is |are )?thicken\w*",
            r"apical (?:pleural )?(?:cap|capping)",
            r"fibrothorax",
        ),
    ),
    Observation(
        "fracture",
        "fracture",
        (r"fractur\w*", r"\bfx\b"),
    ),
    Observation(
        "support_devices",
        "lines, tubes, catheters, pacemakers and other devices",
        (
            r"catheters?",
            r"(?:central|venous|picc|jugular|subclavian|dialysis|arterial|swan) (?:venous )?lines?",
            r"picc",
            r"ports?\b",
            r"port-?a-?cath",
            r"pacemakers?|pacers?|defibrillators?|\bicd\b|\baicd\b",
            r"(?:pacer |pacemaker |icd )?leads?\b",
            r"generators?",
            r"tubes?\b",
            r"\bett\b|\bngt?\b",
            r"stents?",
            r"devices?",
            r"wires?",
            r"electrodes?",
            r"drains?\b",
            r"occluder",
            r"loop recorder",
            r"prosthe\w*",
            r"implant\w*",
            r"valve replacement",
            r"(?:mitral|aortic) valve (?:replacement|prosthesis)",
            r"hardware",
            r"filter",
            r"stimulator",
            r"\btips?\b",
        ),
    ),
    Observation(
        "postsurgical",
        "sternotomy, surgical clips, sutures, resection and other postoperative change",
        (
            r"sternotom\w*",
            r"clips?\b",
            r"sutures?",
            r"cabg",
            r"bypass",
            r"post-?operative|postoperative",
            r"post-?surgical",
            r"status post|\bs/p\b",
            r"surg\w*",
            r"mastectom\w*",
            r"pneumonectom\w*|lobectom\w*|resection|wedge resection",
            r"fusion",
            r"thoracotom\w*",
            r"vertebroplast\w*|kyphoplast\w*",
        ),
    ),
    Observation(
        "granuloma",
        "granulomas, healed granulomatous disease, calcified nodes",
        (
            r"granulom\w*",
            r"calcified (?:hilar |mediastinal |lymph )?(?:nodes?|lymph nodes?)",
            r"histoplasm\w*",
            r"healed (?:granulomatous|infection|tuberculosis|tb)",
        ),
    ),
    Observation(
        "calcification",
        "calcification, atherosclerosis",
        (r"calcif\w*", r"atherosclero\w*", r"atheromatous", r"calcinosis"),
    ),
    Observation(
        "aorta",
        "tortuous, ectatic, unfolded, dilated or aneurysmal aorta",
        (
            r"tortu\w*",
            r"ectati\w*|ectasia",
            r"unfold\w*",
            r"aort\w* (?:\w+ ){0,2}(?:dilat|enlarg|promin|widen)\w*",
            r"(?:dilat|enlarg|promin|widen)\w* (?:of )?(?:the )?(?:\w+ ){0,2}aort\w*",
            r"aneurysm\w*",
        ),
    ),
    Observation(
        "spine_degenerative",
        "degenerative change, osteophytes, spondylosis, arthritis",
        (
            r"degenerat\w*",
            r"osteophyt\w*",
            r"spondyl\w*",
            r"arthrit\w*|arthropath\w*|\bdjd\b",
            r"\bdish\b|hyperostosis",
            r"disc space narrowing|(?:disc|disk) (?:space )?(?:disease|narrowing)",
            r"spurring",
            r"endplate (?:changes|sclerosis|irregularit\w*)",
        ),
    ),
    Observation(
        "spine_deformity",
        "scoliosis, kyphosis, vertebral deformity or height loss, chest wall deformity",
        (
            r"scolio\w*|levoscolio\w*|dextroscolio\w*",
            r"kyphos\w*|kyphotic",
            r"curvature",
            r"deformit\w*",
            r"wedg\w*",
            r"(?:height loss|loss of (?:\w+ ){0,3}height)",
            r"compression",
            r"pectus|funnel chest",
            r"dislocat\w*",
        ),
    ),
    Observation(
        "osteopenia",
        "osteopenia, osteoporosis, demineralisation",
        (r"osteopen\w*", r"osteopor\w*", r"demineraliz\w*|demineralis\w*", r"metabolic bone"),
    ),
    Observation(
        "emphysema",
        "emphysema, COPD, bullae",
        (r"emphysem\w*", r"\bcopd\b", r"chronic obstructive", r"bull(?:a|ae|ous)\b", r"blebs?"),
    ),
    Observation(
        "hyperinflation",
        "hyperinflated, hyperexpanded lungs, flattened diaphragms",
        (
            r"hyperinflat\w*",
            r"hyperexpan\w*",
            r"hyperaerat\w*",
            r"hyperdisten\w*",
            r"over-?inflat\w*",
            r"over-?expan\w*",
            r"flatten\w* (?:of )?(?:the )?(?:\w+ )?(?:hemi)?diaphragm\w*",
            r"(?:hemi)?diaphragms? (?:are |is )?(?:\w+ )?flatten\w*",
            r"increased (?:ap|anteroposterior|a-p|retrosternal)",
            r"hyperlucen\w*",
            r"(?:large|increased|high) lung volumes?",
            r"lung volumes? (?:are |is )?(?:large|increased|high)",
        ),
    ),
    Observation(
        "hypoinflation",
        "low lung volumes, hypoinflation, poor inspiration",
        (
            r"hypoinflat\w*",
            r"hypoventilat\w*",
            r"hypoexpan\w*",
            r"under-?inflat\w*",
            r"(?:low|decreased|diminished|reduced|lower|small|shallow) (?:\w+ )?(?:lung )?volumes?",
            r"lung volumes? (?:are |is |remain )?(?:\w+ )?(?:low|decreased|diminished|reduced|small)",
            r"poor(?:ly)? (?:inspir|inflat)\w*",
            r"(?:shallow|limited|low) (?:inspiration|inspiratory)",
            r"crowding",
        ),
    ),
    Observation(
        "scarring",
        "scarring, fibrosis, parenchymal bands",
        (
            r"scar\w*",
            r"cicatri\w*",
            r"fibros\w*|fibrotic|fibronodular",
            r"parenchymal bands?",
            r"post-?inflammatory",
        ),
    ),
    Observation(
        "markings",
        "increased interstitial or bronchovascular markings, bronchiectasis, airway thickening",
        (
            r"(?:interstitial|bronchovascular|reticular|lung|pulmonary|vascular|linear) markings",
            r"interstitial (?:prominence|thickening|(?:lung )?disease|pattern|changes?|process|abnormalit)",
            r"interstitium",
            r"reticul\w*",
            r"peribronchial (?:cuffing|thickening)",
            r"bronch\w* (?:wall )?thickening",
            r"bronchiectasis|bronchitis|bronchiolitis",
            r"airway (?:thickening|disease)",
        ),
    ),
    Observation(
        "diaphragm",
        "elevated hemidiaphragm, eventration, hiatal hernia",
        (
            r"elevat\w* (?:of )?(?:the )?(?:\w+ ){0,2}(?:hemi)?diaphragm\w*",
            r"(?:hemi)?diaphragm\w* (?:is |are )?(?:\w+ )?elevat\w*",
            r"eventration",
            r"hernia\w*",
        ),
    ),
    Observation(
        "technical",
        "limited or technically unsatisfactory image (rotation, penetration, positioning)",
        (
            r"limited (?:\w+ ){0,2}(?:exam\w*|stud(?:y|ies)|evaluation|view|by|quality)",
            r"rotat(?:ed|ion)",
            r"under-?penetrat\w*|over-?penetrat\w*",
            r"technically|suboptimal|degraded",
            r"obscured by",
            r"motion",
        ),
    ),
)

#: Phrases that look like a mention but describe nothing abnormal of the patient (claimed first).
IGNORED = re.compile(
    r"\b(?:(?:external |ekg |ecg |telemetry |cardiac )?(?:monitor(?:ing)?|telemetry|ekg|ecg) "
    r"(?:leads?|wires?|electrodes?|pads?)|external (?:leads?|wires?|electrodes?|pads?)"
    r"|(?:lung|inspiratory) volumes? (?:are |is )?(?:low )?normal|low normal (?:lung )?volumes?"
    r"|overlying (?:soft tissues?|breast tissue)|tip of the (?:scapula|clavicle))"
)

NAMES: tuple[str, ...] = tuple(o.name for o in OBSERVATIONS)

#: The 13 CheXpert observations among ours (all but "No Finding").
CHEXPERT: tuple[str, ...] = (
    "enlarged_cardiomediastinum",
    "cardiomegaly",
    "lung_opacity",
    "lung_lesion",
    "edema",
    "consolidation",
    "pneumonia",
    "atelectasis",
    "pneumothorax",
    "pleural_effusion",
    "pleural_other",
    "fracture",
    "support_devices",
)

#: Our observations behind each finding class of the embedded synthetic dataset.
SYNTHETIC_CLASSES: dict[str, tuple[str, ...]] = {
    "consolidation": ("consolidation", "pneumonia", "lung_opacity"),
    "nodule": ("lung_lesion",),
    "effusion": ("pleural_effusion",),
    "pneumothorax": ("pneumothorax",),
    "cardiomegaly": ("cardiomegaly",),
    "atelectasis": ("atelectasis",),
    "edema": ("edema",),
}

#: Named class sets for ``FindingsSimilarity(classes=...)`` (None: one class per observation).
CLASS_PRESETS: dict[str, dict[str, tuple[str, ...]] | None] = {
    "all": None,
    "chexpert": {n: (n,) for n in CHEXPERT},
    "synthetic": SYNTHETIC_CLASSES,
}
