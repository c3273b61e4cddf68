-- measure_industry_partnership: per school and year, partnerships with industry (industry
-- colleges, training factories, vocational-education groups, partner enterprises, order
-- classes, apprentices, equipment from enterprises) and with higher education (integrated
-- long programmes, the admissions plan and its long-programme part).
-- Output grain: one row per (year, school_code, measure_id).
with industry_partnership as (
    select * from curated_industry_partnership
),

per_school as (
    select
        year,
        school_code,
        sum(industry_colleges_count)::double as industry_colleges_count,
        sum(training_factories_count)::double as training_factories_count,
        sum(led_vocational_groups_count)::double as led_vocational_groups_count,
        sum(partner_enterprises_count)::double as partner_enterprises_count,
        sum(order_classes_count)::double as order_classes_count,
        sum(apprentices_count)::double as apprentices_count,
        sum(enterprise_equipment_value_yuan)::double as enterprise_equipment_value_yuan,
        sum(five_year_integrated_programs_count)::double as five_year_integrated_programs_count,
        sum(regional_integrated_programs_count)::double as regional_integrated_programs_count,
        sum(undergraduate_integrated_programs_count)::double
            as undergraduate_integrated_programs_count,
        sum(admissions_plan_count)::double as admissions_plan_count,
        sum(long_program_admissions_plan_count)::double as long_program_admissions_plan_count
    from industry_partnership
    group by year, school_code
),

final as (
    unpivot per_school
    on columns(* exclude (year, school_code))
    into name measure_id value measure_value
)

select year, school_code, null::varchar as city_name, measure_id, measure_value from final
