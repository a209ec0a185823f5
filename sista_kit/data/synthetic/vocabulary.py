"""Phrase and sentence templates of the synthetic report writer.

``{P}`` is replaced by a finding phrase; ``[...]`` marks words that describe the finding.
"""

ZONE_ADJ = {
    "upper": ["upper lobe", "apical", "upper zone", "upper lung"],
    "middle": ["mid lung", "perihilar", "midlung zone"],
    "lower": ["lower lobe", "basilar", "lower zone", "base"],
}
ZONE_NOUN = {
    "upper": ["upper lobe", "lung apex", "upper lung zone"],
    "middle": ["mid lung zone", "perihilar region"],
    "lower": ["lower lobe", "lung base", "lower lung zone"],
}
MIDDLE_RIGHT = ["middle lobe"]
MIDDLE_LEFT = ["lingula"]
BILATERAL_ADJ = {
    "upper": ["bilateral upper lobe", "biapical"],
    "middle": ["bilateral perihilar", "bilateral mid lung"],
    "lower": ["bibasilar", "bilateral basilar", "bilateral lower lobe"],
}
BILATERAL_NOUN = {
    "upper": ["both upper lobes", "both lung apices"],
    "middle": ["both perihilar regions", "both mid lung zones"],
    "lower": ["both lung bases", "both lower lobes"],
}

CONSOLIDATION = [
    "consolidation",
    "airspace opacity",
    "airspace disease",
    "opacity",
    "infiltrate",
    "airspace consolidation",
    "opacification",
]
CONSOLIDATION_SEV = {
    "mild": ["mild", "patchy", "subtle", "minimal", ""],
    "moderate": ["moderate", "confluent", ""],
    "severe": ["dense", "extensive", "large"],
}
ATELECTASIS = [
    "atelectasis",
    "subsegmental atelectasis",
    "plate-like atelectasis",
    "linear atelectasis",
    "discoid atelectasis",
    "atelectatic change",
    "volume loss",
]
ATELECTASIS_SEV = {
    "mild": ["mild", "minimal", "minor", ""],
    "moderate": ["moderate", ""],
    "severe": ["extensive", "significant"],
}
NODULE = ["nodule", "nodular opacity", "pulmonary nodule", "rounded opacity", "nodular density"]
MASS = ["mass", "masslike opacity", "pulmonary mass"]
EFFUSION = ["pleural effusion", "effusion", "pleural fluid collection"]
EFFUSION_SIZE = {
    "mild": ["small", "trace", "tiny"],
    "moderate": ["moderate", "moderate-sized"],
    "severe": ["large", "sizable"],
}
PTX_SIZE = {
    "mild": ["small", "tiny", "trace"],
    "moderate": ["moderate", "moderate-sized"],
    "severe": ["large"],
}
EDEMA = [
    "pulmonary edema",
    "interstitial edema",
    "pulmonary vascular congestion",
    "interstitial pulmonary edema",
    "vascular congestion",
    "edema",
]
EDEMA_SEV = {"mild": ["mild", "minimal", ""], "moderate": ["moderate"], "severe": ["severe", "marked"]}
CARDIOMEGALY = {
    "mild": [
        "mild cardiomegaly",
        "mildly enlarged cardiac silhouette",
        "mild enlargement of the cardiac silhouette",
        "mildly enlarged heart",
    ],
    "moderate": [
        "moderate cardiomegaly",
        "moderately enlarged cardiac silhouette",
        "moderately enlarged heart",
    ],
    "severe": ["marked cardiomegaly", "severe cardiomegaly", "markedly enlarged cardiac silhouette"],
}
CARDIOMEGALY_SENT = {
    "mild": [
        "The [heart is mildly enlarged].",
        "The [cardiac silhouette is mildly enlarged].",
        "[Heart size is mildly enlarged].",
    ],
    "moderate": ["The [heart is moderately enlarged].", "The [cardiac silhouette is moderately enlarged]."],
    "severe": ["The [heart is markedly enlarged].", "The [cardiac silhouette is severely enlarged]."],
}

POSITIVE = [
    "There is {P}.",
    "{P} is present.",
    "{P} is noted.",
    "{P} is seen.",
    "{P}.",
    "There is evidence of {P}.",
    "Note is made of {P}.",
    "{P} is demonstrated.",
    "{P} is identified.",
    "Findings include {P}.",
]
HEDGED = [
    "Possible {P}.",
    "{P} cannot be excluded.",
    "Findings may represent {P}.",
    "Questionable {P}.",
    "Probable {P}.",
    "Suspected {P}.",
    "There may be {P}.",
    "Likely {P}.",
]
COMPARED = [
    "New {P}.",
    "Stable {P}.",
    "Unchanged {P}.",
    "Interval increase in {P}.",
    "Slightly decreased {P}.",
    "Persistent {P}.",
    "{P} is new since the prior study.",
    "{P} is unchanged from prior.",
    "Again seen is {P}.",
]
IMPRESSION_ANY = [
    "{P}.",
    "{P}.",
    "Findings consistent with {P}.",
    "{P}, new from prior.",
    "Persistent {P}.",
    "Possible {P}.",
]
IMPRESSION_POS = {
    "consolidation": [
        "{P}, concerning for pneumonia.",
        "{P} which may represent pneumonia in the correct clinical setting.",
    ],
    "nodule": ["{P}; recommend CT for further evaluation.", "{P}, follow-up CT recommended."],
    "effusion": ["{P} with adjacent atelectasis not excluded."],
    "pneumothorax": ["{P}. Findings discussed with the referring clinician."],
    "edema": ["{P}, consistent with fluid overload.", "{P} suggesting congestive heart failure."],
    "cardiomegaly": ["{P} without acute decompensation."],
    "atelectasis": ["{P}, likely postoperative."],
}

PRIOR_INTRO = [
    "Comparison is made to the prior study.",
    "Compared with the prior radiograph.",
    "PA and lateral views of the chest compared to prior.",
    "Comparison: prior chest radiograph.",
]
NO_PRIOR_INTRO = [
    "PA and lateral views of the chest.",
    "Single frontal view of the chest.",
    "No prior studies available for comparison.",
    "Frontal and lateral radiographs of the chest.",
    "Portable AP view of the chest.",
]
LUNGS_CLEAR = [
    "The lungs are clear.",
    "Lungs are clear bilaterally.",
    "The lungs are well expanded and clear.",
    "Clear lungs.",
    "No focal airspace disease.",
    "The lungs are clear without focal consolidation.",
]
HEART_NORMAL = [
    "The cardiomediastinal silhouette is within normal limits.",
    "Heart size is normal.",
    "Normal heart size.",
    "The heart and mediastinum are unremarkable.",
    "Cardiac and mediastinal contours are normal.",
    "Normal cardiomediastinal silhouette.",
]
NEG_EFF_PTX = [
    "No pleural effusion or pneumothorax.",
    "There is no pneumothorax or pleural effusion.",
    "No effusion or pneumothorax is seen.",
    "No pneumothorax or large pleural effusion.",
]
NEGATIONS = {
    "effusion": [
        "No pleural effusion.",
        "No pleural effusions.",
        "There is no pleural effusion.",
        "No evidence of pleural effusion.",
        "The costophrenic angles are sharp.",
    ],
    "pneumothorax": ["No pneumothorax.", "There is no pneumothorax.", "No evidence of pneumothorax."],
    "consolidation": ["No focal consolidation.", "No focal airspace opacity.", "No consolidation."],
    "edema": ["No pulmonary edema.", "No evidence of edema.", "No vascular congestion."],
    "nodule": [
        "No suspicious pulmonary nodules.",
        "No nodules or masses.",
        "No suspicious pulmonary nodule or mass.",
    ],
    "atelectasis": ["No atelectasis.", "No significant atelectasis."],
}
BONES = [
    "No acute osseous abnormality.",
    "The osseous structures are intact.",
    "Visualized osseous structures are unremarkable.",
    "Degenerative changes of the thoracic spine.",
    "No acute bony abnormality.",
]
DEVICES = {
    1: [
        "Right-sided central venous catheter tip in the SVC.",
        "A right internal jugular line terminates in the SVC.",
        "Central line in place with tip in the distal SVC.",
    ],
    2: [
        "Endotracheal tube terminates above the carina.",
        "ET tube in satisfactory position.",
        "The endotracheal tube tip is 4 cm above the carina.",
    ],
}
IMPRESSION_NORMAL = [
    "No acute cardiopulmonary process.",
    "No acute cardiopulmonary abnormality.",
    "No active disease.",
    "Normal chest radiograph.",
    "No acute findings.",
    "No radiographic evidence of acute cardiopulmonary disease.",
]
