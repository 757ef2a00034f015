"""Head office's HR master data: employees and how to reach them, rosters, leave, trips, 补卡.

The cloud is where HR keeps these; each plant's appliance gets its share through the
configuration channel (``config_doc.plant_config``), and the escalation engine reads them to
decide whom to contact and which absences are excused.
"""
